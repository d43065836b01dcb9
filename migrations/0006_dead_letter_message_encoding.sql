-- How `message` keeps the message set aside, so that recording a dead letter never fails on
-- what the message holds: 'json' (the message itself), 'text' (a JSON string of its text
-- with '\' doubled and NUL written \u0000: Postgres stores NUL in neither text nor jsonb) or
-- 'hex' (a JSON string of its bytes in hex: they are not UTF-8).
ALTER TABLE dead_letters ADD COLUMN message_encoding text NOT NULL DEFAULT 'json'
    CHECK (message_encoding IN ('json', 'text', 'hex'));

-- Messages that were not JSON used to be kept as a JSON string of their text, which replays
-- sent back as that text: the same, now said by the encoding.
UPDATE dead_letters
SET message_encoding = 'text', message = to_jsonb(replace(message #>> '{}', '\', '\\'))
WHERE jsonb_typeof(message) = 'string';
