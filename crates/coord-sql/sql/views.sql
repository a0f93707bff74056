-- coord's verifying views. Created in the TEMP schema of each connection
-- that loads coord: a database file cannot redefine them (TEMP names are
-- resolved first, and nothing in the file can write to TEMP), and they may
-- call coord's functions, which stored objects can not.

DROP VIEW IF EXISTS temp.coord_work;
CREATE TEMP VIEW coord_work AS
SELECT task_id, claimer, epoch, claimed_at, expires_at, status,
       -- live through its expiry second, as gptme-coordination reads it
       CASE WHEN status = 'claimed' AND (expires_at IS NULL OR expires_at < datetime('now'))
            THEN 'expired' ELSE status END AS state,
       result, metadata, completed_at, hmac,
       verification,
       verification IN ('verified', 'retired_key') AS verified
FROM (SELECT w.*,
             coord_claim_status(w.claimer, w.hmac, w.task_id, w.epoch, w.expires_at)
               AS verification
      FROM main.work AS w);

DROP VIEW IF EXISTS temp.coord_messages;
CREATE TEMP VIEW coord_messages AS
SELECT id, sender, recipient, channel, body, created_at, hmac,
       verification,
       verification IN ('verified', 'retired_key') AS verified
FROM (SELECT m.*,
             coord_message_status(m.sender, m.hmac, m.recipient, m.channel, m.body)
               AS verification
      FROM main.messages AS m);

-- Messages for the connection's agent (coord_agent()): sent to it, or
-- broadcast.
DROP VIEW IF EXISTS temp.coord_inbox;
CREATE TEMP VIEW coord_inbox AS
SELECT * FROM coord_messages
WHERE recipient = coord_agent() OR recipient IS NULL;
