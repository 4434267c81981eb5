/* login.c — what `adminctl auth login` needs beyond the catalog: the password is never a
 * command-line word (argv is visible to every user of the host in ps and /proc), so it is
 * read from the terminal with echo off, or from standard input with --password-stdin. */
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"

static bool s_is_login(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "auth") && !strcmp(argv[i + 1], "login"))
            return true;
    return false;
}

bool ctl_login_take_flags(int *argc, char **argv)
{
    if (!s_is_login(*argc, argv))
        return false;
    bool seen = false;
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        if (!strcmp(argv[i], "--password-stdin"))
            seen = true;
        else
            argv[out++] = argv[i];
    }
    argv[out] = NULL;
    *argc = out;
    return seen;
}

/* One line from f into buf without its newline. Returns 0, or -1 when nothing was read. */
static int s_read_line(FILE *f, char *buf, size_t cap)
{
    if (!fgets(buf, (int)cap, f))
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

static int s_read_tty(char *buf, size_t cap)
{
    FILE *tty = fopen("/dev/tty", "r+");
    if (!tty)
        return -1;
    struct termios old, quiet;
    int fd = fileno(tty), rc = -1;
    if (tcgetattr(fd, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        fputs("Password: ", tty);
        fflush(tty);
        if (tcsetattr(fd, TCSAFLUSH, &quiet) == 0) {
            rc = s_read_line(tty, buf, cap);
            tcsetattr(fd, TCSAFLUSH, &old);
        }
        fputs("\n", tty);
    }
    fclose(tty);
    return rc;
}

bool ctl_login_prompted(const ab_command *cmd, const ab_arg *arg)
{
    return !strcmp(cmd->type, "auth.login") && !strcmp(arg->name, "password");
}

int ctl_login_password(ctl_cli *cli, bool from_stdin, char *buf, size_t cap, char *err,
                       size_t errlen)
{
    int idx = -1;
    for (size_t i = 0; i < cli->cmd->nargs; i++)
        if (!strcmp(cli->cmd->args[i].name, "password"))
            idx = (int)i;
    if (idx < 0)
        return 0;
    if (cli->values[idx].given) {
        snprintf(err, errlen,
                 "auth login never takes the password on the command line (others can read it "
                 "there): type it at the prompt, or pipe it with --password-stdin");
        return -1;
    }
    int rc = from_stdin ? s_read_line(stdin, buf, cap) : s_read_tty(buf, cap);
    if (rc < 0 || !buf[0]) {
        snprintf(err, errlen, "%s",
                 from_stdin ? "no password on standard input (--password-stdin)"
                            : "no password: no terminal to ask on; use --password-stdin");
        return -1;
    }
    cli->values[idx].given = true;
    cli->values[idx].str = buf;
    return 0;
}
