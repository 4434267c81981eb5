-- 0011_event_outbox: events that must not be lost (issue 7, the Kafka transport). An
-- engine on a transport with durable events writes each event of a batch here in the
-- batch's own transaction, so an event exists if and only if its change does; after
-- COMMIT it relays the rows to the events topic, waits for the bus to acknowledge them and
-- deletes them. A row left by an engine that died between its COMMIT and the delete is
-- relayed by any engine's next pass (claimed with FOR UPDATE SKIP LOCKED), so delivery is
-- at least once: a subscriber may see an event twice, never miss one.
--
-- topic: the event's topic (the record key on Kafka); body: the whole event map (msgpack).

CREATE TABLE IF NOT EXISTS event_outbox (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  topic VARCHAR(160) NOT NULL,
  body MEDIUMBLOB NOT NULL,
  created DATETIME(3) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
