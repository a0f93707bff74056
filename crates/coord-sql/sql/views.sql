-- coord's verifying views. Created in the TEMP schema of each connection
-- that loads coord: a database file cannot redefine them (TEMP names are
-- resolved first, and nothing in the file can write to TEMP), and they may
-- call coord's functions, which stored objects can not.
--
-- Holes filled by coord-sql (src/lib.rs): {task_state} and {message_state}
-- are the columns an event records (coord-core's TASK_STATE and
-- MESSAGE_STATE, as w.* and m.*); {events} and {checkpoints} are
-- main.coord_events and main.coord_checkpoints, or an empty row set on a
-- database that has no log yet (a gptme-coordination file before
-- coord_init), so that the views still read it. The event_history hole is
-- what a row that matches its last event `e` reads: matches (e verifies),
-- unsigned_event (e carries no MAC, as a submit by no agent) or
-- unverified_event.

DROP VIEW IF EXISTS temp.coord_work;
CREATE TEMP VIEW coord_work AS
SELECT r.task_id, r.claimer, r.epoch, r.claimed_at, r.expires_at, r.status,
       -- live through its expiry second, as gptme-coordination reads it
       CASE WHEN r.status = 'claimed' AND (r.expires_at IS NULL OR r.expires_at < datetime('now'))
            THEN 'expired' ELSE r.status END AS state,
       r.result, r.metadata, r.completed_at, r.hmac,
       verification,
       verification IN ('verified', 'retired_key') AS verified,
       -- the row against its last event: no_history, matches, changed,
       -- not_holder, unsigned_event, unverified_event (docs/history.md)
       CASE WHEN e.seq IS NULL THEN 'no_history'
            WHEN row_state IS NOT e.state THEN 'changed'
            -- a claim, renewal or completion is the holder's own
            -- (e.state is the row's canonical JSON here, so valid JSON)
            WHEN e.op IN ('claim', 'renew', 'complete')
                 AND json_extract(e.state, '$[1]') IS NOT e.agent THEN 'not_holder'
            ELSE {event_history} END AS history
FROM (SELECT w.*,
             coord_claim_status(w.claimer, w.hmac, w.task_id, w.epoch, w.expires_at)
               AS verification,
             coord_state({task_state}) AS row_state,
             (SELECT max(x.seq) FROM {events} AS x
               WHERE x.subject = w.task_id AND x.op <> 'send') AS last_seq
      FROM main.work AS w) AS r
LEFT JOIN {events} AS e ON e.seq = r.last_seq;

DROP VIEW IF EXISTS temp.coord_messages;
CREATE TEMP VIEW coord_messages AS
SELECT r.id, r.sender, r.recipient, r.channel, r.body, r.created_at, r.hmac,
       verification,
       verification IN ('verified', 'retired_key') AS verified,
       CASE WHEN e.seq IS NULL THEN 'no_history'
            WHEN row_state IS NOT e.state THEN 'changed'
            ELSE {event_history} END AS history
FROM (SELECT m.*,
             coord_message_status(m.sender, m.hmac, m.recipient, m.channel, m.body)
               AS verification,
             coord_state({message_state}) AS row_state,
             (SELECT max(x.seq) FROM {events} AS x
               -- a message's subject is stored as text; an integer one
               -- (a forger's) is still found, and fails its MAC
               WHERE x.subject IN (CAST(m.id AS TEXT), m.id) AND x.op = 'send') AS last_seq
      FROM main.messages AS m) AS r
LEFT JOIN {events} AS e ON e.seq = r.last_seq;

-- Messages for the connection's agent (coord_agent()): sent to it, or
-- broadcast.
DROP VIEW IF EXISTS temp.coord_inbox;
CREATE TEMP VIEW coord_inbox AS
SELECT * FROM coord_messages
WHERE recipient = coord_agent() OR recipient IS NULL;

-- The event log, each event checked: its MAC (verification), its place in
-- the chain (chain: ok, gap, broken), whether its agent was the one
-- allowed to act (actor: ok, not_holder, not_sender, held: a claim over
-- another agent's live lease, unknown: no earlier event to judge by), and for the
-- last event of each task or message, the row now (row: matches, changed,
-- deleted; superseded for earlier events).
DROP VIEW IF EXISTS temp.coord_log;
CREATE TEMP VIEW coord_log AS
SELECT seq, op, subject, agent, at, state, prev, hmac, link,
       verification,
       verification IN ('verified', 'retired_key') AS verified,
       CASE WHEN before_seq IS NULL THEN CASE WHEN seq = 1 AND prev = '' THEN 'ok' ELSE 'gap' END
            WHEN seq <> before_seq + 1 THEN 'gap'
            WHEN prev IS NOT before_link THEN 'broken'
            ELSE 'ok' END AS chain,
       CASE WHEN op = 'claim' AND before_status = 'claimed' AND before_expires >= at
                 AND before_actor IS NOT agent THEN 'held'
            WHEN op = 'abandon' THEN
                 CASE WHEN NOT has_before THEN 'unknown'
                      WHEN before_actor IS agent THEN 'ok'
                      ELSE 'not_holder' END
            WHEN op IN ('claim', 'renew', 'complete', 'send') THEN
                 CASE WHEN st_actor IS agent THEN 'ok'
                      WHEN op = 'send' THEN 'not_sender'
                      ELSE 'not_holder' END
            ELSE 'ok' END AS actor,
       CASE WHEN NOT is_last THEN 'superseded'
            WHEN kind = 'task' THEN
                 COALESCE((SELECT CASE WHEN coord_state({task_state}) IS l.state
                                       THEN 'matches' ELSE 'changed' END
                             FROM main.work AS w WHERE w.task_id = l.subject), 'deleted')
            ELSE COALESCE((SELECT CASE WHEN coord_state({message_state}) IS l.state
                                       THEN 'matches' ELSE 'changed' END
                             FROM main.messages AS m WHERE m.id = l.subject), 'deleted')
            END AS row
FROM (SELECT e.*,
             lag(e.seq) OVER (ORDER BY e.seq) AS before_seq,
             lag(e.link) OVER (ORDER BY e.seq) AS before_link,
             -- the subject's state before this event (a task's holder,
             -- status and expiry), from its previous event
             lag(e.seq) OVER subject IS NOT NULL AS has_before,
             lag(e.st_actor) OVER subject AS before_actor,
             lag(e.st_status) OVER subject AS before_status,
             lag(e.st_expires) OVER subject AS before_expires,
             e.seq = max(e.seq) OVER (PARTITION BY e.kind, e.subject) AS is_last
      FROM (SELECT x.*,
                   CASE WHEN x.op = 'send' THEN 'message' ELSE 'task' END AS kind,
                   -- (CASE, not AND: SQLite may evaluate both sides of an AND)
                   CASE WHEN json_valid(x.state) THEN json_extract(x.state, '$[1]') END AS st_actor,
                   CASE WHEN json_valid(x.state) THEN json_extract(x.state, '$[5]') END AS st_status,
                   CASE WHEN json_valid(x.state) THEN json_extract(x.state, '$[4]') END AS st_expires,
                   coord_event_link(x.agent, x.hmac, x.seq, x.prev, x.op, x.subject, x.at, x.state)
                     AS link,
                   coord_event_status(x.agent, x.hmac, x.seq, x.prev, x.op, x.subject, x.at, x.state)
                     AS verification
              FROM {events} AS x) AS e
      WINDOW subject AS (PARTITION BY e.kind, e.subject ORDER BY e.seq)) AS l;

-- Checkpoints, each checked against the log here (consistent: ok;
-- ahead: the log is shorter than this checkpoint says, as after a
-- rollback; fork: the log's event at that size is not the one signed).
DROP VIEW IF EXISTS temp.coord_checkpoint_log;
CREATE TEMP VIEW coord_checkpoint_log AS
SELECT c.id, c.agent, c.origin, c.size, c.head, c.at, c.hmac,
       coord_checkpoint_status(c.agent, c.hmac, c.origin, c.size, c.head, c.at) AS verification,
       CASE WHEN h.seq IS NULL THEN 'ahead'
            WHEN coord_event_link(h.agent, h.hmac, h.seq, h.prev, h.op, h.subject, h.at, h.state)
                 IS NOT c.head
              OR (SELECT coord_event_link(o.agent, o.hmac, o.seq, o.prev, o.op, o.subject, o.at, o.state)
                    FROM {events} AS o WHERE o.seq = 1) IS NOT c.origin THEN 'fork'
            ELSE 'consistent' END AS consistency
FROM {checkpoints} AS c
LEFT JOIN {events} AS h ON h.seq = c.size;
