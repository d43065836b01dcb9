-- Media probes run in a stage of their own, after the call is stored: a call's media is
-- 'pending' until its probe's result is written back, then 'reachable', 'unreachable' (an
-- error status, a timeout, a refused connection, an open circuit) or 'refused' (the SSRF
-- guard would not let the probe connect). media_checked_at says when it was last checked,
-- media_probe_attempts how many probes it took, media_next_probe_at when the next one is due
-- while a recording that may still appear is retried (NULL once the status is final).
ALTER TABLE calls
    ADD COLUMN media_status text NOT NULL DEFAULT 'pending'
        CHECK (media_status IN ('pending', 'reachable', 'unreachable', 'refused')),
    ADD COLUMN media_probe_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN media_next_probe_at timestamptz;

-- Calls stored before: what their inline probe found.
UPDATE calls SET
    media_status = CASE
        WHEN media_reachable THEN 'reachable'
        WHEN media_error LIKE 'blocked%' THEN 'refused'
        WHEN media_checked_at IS NULL OR media_error = 'not probed' THEN 'pending'
        ELSE 'unreachable'
    END,
    media_probe_attempts = CASE WHEN media_checked_at IS NULL OR media_error = 'not probed' THEN 0 ELSE 1 END;
