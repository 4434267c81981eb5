/* test_archive — the backup archive producer (archive.c) against GNU tar and gzip, member
 * names, and the GnuPG recipient syntax of backup.run (engine/backup/backup.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backup/archive.h"
#include "backup/backup.h"
#include "auth/secret.h"

static char s_dir[] = "/tmp/ab-archive-test.XXXXXX";

static void s_write(const char *path, const char *data, size_t len, mode_t mode)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    chmod(path, mode);
}

static char *s_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* The last member: every earlier member's name and hash, one per line. */
static char *s_list(const ab_archive *a, void *arg, size_t *len)
{
    (void)arg;
    char *out = calloc(1, 4096);
    for (size_t i = 0; i < ab_archive_count(a); i++) {
        ab_archive_member m = ab_archive_member_at(a, i);
        char hex[65];
        ab_hex32(m.sha256, hex);
        snprintf(out + strlen(out), 4096 - strlen(out), "%s %s %llu %04o\n", hex, m.name,
                 (unsigned long long)m.size, m.mode);
    }
    *len = strlen(out);
    return out;
}

static void test_archive_reads_back_with_tar(void **state)
{
    char path[256], fdpath[256], out[256], cmd[1024];
    assert_non_null(mkdtemp(s_dir));
    snprintf(path, sizeof path, "%s/in.bin", s_dir);
    snprintf(fdpath, sizeof fdpath, "%s/fd.bin", s_dir);
    snprintf(out, sizeof out, "%s/a.tar.gz", s_dir);
    /* 1,000,003 bytes: many chunks and a partial last block; an empty file; a long name */
    size_t big = 1000003;
    char *data = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)(i * 7 + i / 1000);
    s_write(path, data, big, 0640);
    s_write(fdpath, "", 0, 0600);
    FILE *fd_file = fopen(fdpath, "rb");
    char long_name[200];
    snprintf(long_name, sizeof long_name,
             "home/files/%s/deep/name-that-is-long-enough-to-need-the-ustar-prefix.txt",
             "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz");
    assert_true(strlen(long_name) > 100);

    ab_archive *a = ab_archive_new(6);
    assert_non_null(a);
    assert_int_equal(ab_archive_add_path(a, "home/files/data.bin", path, big, 0640, 1700000000), 0);
    assert_int_equal(ab_archive_add_fd(a, "db/empty.sql", dup(fileno(fd_file)), 0, 0600, 0), 0);
    assert_int_equal(ab_archive_add_path(a, long_name, path, 10, 0644, 0), 0);
    assert_int_equal(ab_archive_set_last(a, "MANIFEST", 0600, s_list, NULL), 0);
    assert_int_equal(ab_archive_add_path(a, "../evil", path, 1, 0600, 0), -1);
    fclose(fd_file);
    FILE *f = fopen(out, "wb");
    char buf[777]; /* an odd size: reads end mid-stream */
    ssize_t n;
    while ((n = ab_archive_read(a, buf, sizeof buf)) > 0)
        fwrite(buf, 1, (size_t)n, f);
    assert_int_equal(n, 0);
    fclose(f);
    assert_int_equal(ab_archive_bytes_done(a), big + 10);
    assert_int_equal(ab_archive_count(a), 4);
    ab_archive_member m0 = ab_archive_member_at(a, 0);
    uint8_t want[32];
    ab_sha256_pair(data, big, NULL, 0, want);
    assert_memory_equal(m0.sha256, want, 32);
    ab_archive_destroy(&a);
    assert_null(a);

    /* gzip and GNU tar read it: names, modes, sizes, and the bytes back */
    snprintf(cmd, sizeof cmd, "gzip -t %s", out);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "cd %s && mkdir x && tar -xzf a.tar.gz -C x && cmp x/home/files/data.bin in.bin && "
             "test ! -s x/db/empty.sql && head -c 10 in.bin | cmp - x/%s && "
             "test \"$(stat -c %%a x/home/files/data.bin)\" = 640 && "
             "test \"$(tar -tzf a.tar.gz | tail -n 1)\" = MANIFEST",
             s_dir, long_name);
    assert_int_equal(system(cmd), 0);
    /* the manifest member lists the hashes tar's own reading agrees with */
    char mpath[300];
    snprintf(mpath, sizeof mpath, "%s/x/MANIFEST", s_dir);
    size_t mlen;
    char *manifest = s_read(mpath, &mlen);
    char hex[65];
    ab_hex32(want, hex);
    assert_non_null(strstr(manifest, hex));
    assert_non_null(strstr(manifest, " home/files/data.bin 1000003 0640\n"));
    assert_non_null(strstr(manifest, " db/empty.sql 0 0600\n"));
    free(manifest);
    free(data);
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    assert_int_equal(system(cmd), 0);
}

static void test_archive_fails_when_a_file_shrinks(void **state)
{
    char dir[] = "/tmp/ab-archive-test.XXXXXX", path[256], buf[4096];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/f", dir);
    s_write(path, "short", 5, 0600);
    ab_archive *a = ab_archive_new(1);
    assert_int_equal(ab_archive_add_path(a, "home/f", path, 5000, 0600, 0), 0);
    ssize_t n;
    while ((n = ab_archive_read(a, buf, sizeof buf)) > 0)
        ;
    assert_int_equal(n, -1);
    assert_non_null(strstr(ab_archive_error(a), "shrank"));
    ab_archive_destroy(&a);
    unlink(path);
    rmdir(dir);
}

static void test_member_names(void **state)
{
    assert_true(ab_archive_name_ok("MANIFEST"));
    assert_true(ab_archive_name_ok("home/files/Ünïcode logo.png"));
    assert_false(ab_archive_name_ok(""));
    assert_false(ab_archive_name_ok("/etc/passwd"));
    assert_false(ab_archive_name_ok("home/../x"));
    assert_false(ab_archive_name_ok("home/./x"));
    assert_false(ab_archive_name_ok("home//x"));
    assert_false(ab_archive_name_ok("home/x/"));
    assert_false(ab_archive_name_ok(".."));
    assert_false(ab_archive_name_ok("home/a\nb"));
    assert_false(ab_archive_name_ok("home/a\\b"));
    assert_false(ab_archive_name_ok("home/\xc3(")); /* not UTF-8 */
    char name[300];
    memset(name, 'a', 150);
    strcpy(name + 150, "/b");
    assert_true(ab_archive_name_ok(name)); /* prefix 150, name 1 */
    memset(name, 'a', 160);
    strcpy(name + 160, "/b");
    assert_false(ab_archive_name_ok(name)); /* no split fits */
}

static void test_recipient_syntax(void **state)
{
    ab_error err;
    const char *good[] = {"05E805C2A24E9568C3192ECF009EB975A03B778D",
                          "0x05e805c2a24e9568c3192ecf009eb975a03b778d", "009EB975A03B778D",
                          "backup@example.org", "first.last+tag@sub.example.org"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(ab_backup_check_recipient(good[i], strlen(good[i]), &err), 0);
    const char *bad[] = {"",
                         "ABCDEF",
                         "not a key",
                         "05E805C2A24E9568C3192ECF009EB975A03B778G",
                         "a@b",
                         "@example.org",
                         "a@@example.org",
                         "<a@example.org>",
                         "a b@example.org",
                         "a@example.org\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ab_backup_check_recipient(bad[i], strlen(bad[i]), &err), -1);
        assert_int_equal(err.code, AB_E_INVALID);
        assert_string_equal(err.field, "encrypt_to");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_archive_reads_back_with_tar),
        cmocka_unit_test(test_archive_fails_when_a_file_shrinks),
        cmocka_unit_test(test_member_names),
        cmocka_unit_test(test_recipient_syntax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
