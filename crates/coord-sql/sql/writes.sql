-- The compare-and-swap of every write-API operation, defined once for every
-- backend. Each operation first decides, from the state it reads, and puts
-- that decision in one row of `coord_result` (its columns: `DECISION` in
-- src/writes.rs). The statements below then make the write, each applying
-- only if the row is still in the state the decision read, and the check
-- that follows names what did not land as decided.
--
-- They read nothing but `coord_result` and the tables they write, and call
-- no coord function, so that the same text runs in two places:
-- - on a file, inside the write API's INSTEAD OF triggers (sql/api.sql),
--   where `coord_result` is the connection's TEMP table;
-- - on a libSQL server, on the primary inside the client's BEGIN IMMEDIATE,
--   where `coord_result` is a one-row CTE holding the decision (and MAC)
--   the client made and signed with its own keys.
--
-- Format: `-- write: OP` starts an operation's writes, `-- check: OP` its
-- check, a SELECT of one `problem` column (a row means the write did not
-- apply: an error, and nothing is committed). Statements end with `;` at
-- the end of a line. Tables written are unqualified, as a trigger requires.

-- write: claim
-- renew (the holder's live claim: new expiry, same epoch) or grant an
-- existing task (available, expired, abandoned or completed: epoch + 1)
UPDATE work
   SET (claimer, epoch, claimed_at, expires_at, status, completed_at, result, hmac) =
       (SELECT r.agent, r.epoch,
               CASE r.outcome WHEN 'granted' THEN r.now ELSE work.claimed_at END,
               r.expires_at, 'claimed',
               CASE r.outcome WHEN 'granted' THEN NULL ELSE work.completed_at END,
               CASE r.outcome WHEN 'granted' THEN NULL ELSE work.result END,
               r.mac
          FROM coord_result AS r)
 WHERE task_id = (SELECT task_id FROM coord_result)
   AND EXISTS (SELECT 1 FROM coord_result AS r
                WHERE (r.outcome = 'renewed' AND work.status = 'claimed'
                       AND work.claimer = r.agent AND work.epoch = r.epoch)
                   OR (r.outcome = 'granted' AND r.existed AND work.epoch = r.epoch - 1
                       AND NOT (work.status = 'claimed' AND work.expires_at >= r.now)));
-- grant a task nobody has seen: it starts at epoch 1 (a row that appeared
-- since the decision is a primary-key conflict, an error)
INSERT INTO work(task_id, claimer, epoch, claimed_at, expires_at, status, hmac)
SELECT task_id, agent, 1, now, expires_at, 'claimed', mac
  FROM coord_result
 WHERE outcome = 'granted' AND NOT existed;

-- check: claim
SELECT 'coord_claim: internal error: the ' || r.outcome || ' of ' || r.task_id
       || ' did not apply' AS problem
  FROM coord_result AS r
 WHERE r.outcome IN ('granted', 'renewed')
   AND NOT EXISTS (SELECT 1 FROM work AS w
                    WHERE w.task_id = r.task_id AND w.claimer = r.agent
                      AND w.epoch = r.epoch AND w.expires_at = r.expires_at
                      AND w.status = 'claimed' AND w.hmac IS r.mac)

-- write: complete
UPDATE work
   SET status = 'completed',
       completed_at = (SELECT now FROM coord_result),
       result = (SELECT result FROM coord_result)
 WHERE task_id = (SELECT task_id FROM coord_result)
   AND (SELECT outcome FROM coord_result) = 'completed'
   AND status = 'claimed'
   AND claimer = (SELECT agent FROM coord_result)
   AND epoch = (SELECT epoch FROM coord_result);

-- check: complete
SELECT 'coord_complete: internal error: the completion of ' || r.task_id
       || ' did not apply' AS problem
  FROM coord_result AS r
 WHERE r.outcome = 'completed'
   AND NOT EXISTS (SELECT 1 FROM work AS w WHERE w.task_id = r.task_id
                      AND w.status = 'completed' AND w.epoch = r.epoch)

-- write: abandon
-- the row gptme-coordination's abandon writes: no holder, no expiry, no
-- MAC, so its list_available() offers the task at once
UPDATE work
   SET status = 'abandoned', claimer = NULL, expires_at = NULL,
       completed_at = NULL, hmac = NULL, result = NULL
 WHERE task_id = (SELECT task_id FROM coord_result)
   AND (SELECT outcome FROM coord_result) = 'abandoned'
   AND status = 'claimed'
   AND claimer = (SELECT agent FROM coord_result)
   AND epoch = (SELECT epoch FROM coord_result);

-- check: abandon
SELECT 'coord_abandon: internal error: abandoning ' || r.task_id || ' did not apply' AS problem
  FROM coord_result AS r
 WHERE r.outcome = 'abandoned'
   AND NOT EXISTS (SELECT 1 FROM work AS w WHERE w.task_id = r.task_id
                      AND w.status = 'abandoned' AND w.epoch = r.epoch)

-- write: submit
INSERT INTO work(task_id, status, metadata)
SELECT task_id, 'available', metadata FROM coord_result WHERE outcome = 'submitted';
-- gptme-coordination's submit: an abandoned task is offered again, its
-- epoch kept so the next claim still fences every earlier holder
UPDATE work
   SET status = 'available', claimer = NULL, claimed_at = NULL, expires_at = NULL,
       completed_at = NULL, result = NULL,
       metadata = COALESCE((SELECT metadata FROM coord_result), metadata)
 WHERE task_id = (SELECT task_id FROM coord_result)
   AND (SELECT outcome FROM coord_result) = 'resubmitted'
   AND status = 'abandoned' AND epoch = (SELECT epoch FROM coord_result);

-- check: submit
SELECT 'coord_submit: internal error: submitting ' || r.task_id || ' did not apply' AS problem
  FROM coord_result AS r
 WHERE r.outcome IN ('submitted', 'resubmitted')
   AND NOT EXISTS (SELECT 1 FROM work AS w WHERE w.task_id = r.task_id
                      AND w.status = 'available' AND w.epoch IS r.epoch)

-- write: send
-- created_at is the decision's time, so that the event the decision signs
-- records the row exactly as every backend writes it
INSERT INTO messages(sender, recipient, channel, body, hmac, created_at)
SELECT agent, recipient, channel, body, mac, now FROM coord_result WHERE outcome = 'sent';

-- check: send
SELECT 'coord_send: internal error: the message was not written as decided' AS problem
  FROM coord_result AS r
 WHERE NOT EXISTS (SELECT 1 FROM messages AS m WHERE m.id = last_insert_rowid()
                      AND m.sender IS r.agent AND m.body IS r.body AND m.hmac IS r.mac)


-- write: event
-- the operation's event (docs/history.md): decided, with its state and
-- MAC, after the operation's own writes. Its seq is the next in the log, which
-- the write lock the transaction holds keeps gapless
INSERT INTO coord_events(seq, prev, op, subject, at, agent, state, hmac)
SELECT ev_seq, ev_prev, ev_op, ev_subject, ev_at, ev_agent, ev_state, ev_mac
  FROM coord_result WHERE ev_seq IS NOT NULL;

-- (the check: the event is there as decided, and the row it records is
-- the row written; a server that rewrote the row, or dropped the event,
-- fails here)
-- check: event
SELECT 'coord: internal error: event ' || r.ev_seq || ' (' || r.ev_op || ' of '
       || r.ev_subject || ') does not record the row as written' AS problem
  FROM coord_result AS r
 WHERE r.ev_seq IS NOT NULL
   AND (NOT EXISTS (SELECT 1 FROM coord_events AS e
                     WHERE e.seq = r.ev_seq AND e.prev IS r.ev_prev AND e.hmac IS r.ev_mac
                       AND e.state IS r.ev_state AND e.agent IS r.ev_agent)
        OR (r.ev_op <> 'send'
            AND NOT EXISTS (SELECT 1 FROM work AS w
                             WHERE w.task_id = r.ev_subject AND {task_matches}))
        OR (r.ev_op = 'send'
            AND NOT EXISTS (SELECT 1 FROM messages AS m
                             WHERE m.id = r.ev_subject AND {message_matches})))
