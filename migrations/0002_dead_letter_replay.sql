-- When the row itself was written: a replay moves only rows written before it began, so
-- a call that fails again during the replay is not picked up a second time by that replay.
ALTER TABLE dead_letters ADD COLUMN recorded_at timestamptz NOT NULL DEFAULT now();
-- Listing and counting by reason and time range.
CREATE INDEX dead_letters_reason_time ON dead_letters (reason, last_failed_at);
