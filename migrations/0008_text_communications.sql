-- Text communications (chats, tickets, emails) from POST .../text, and a per-integration
-- switch for clients written against the real API. See docs/contract.md, "Text channels".

-- Refuse a call or text whose operator is unknown or inactive at once with the real API's
-- 422, for clients that repair themselves (import the binding, post again), instead of the
-- default dead letter and automatic replay.
ALTER TABLE integrations ADD COLUMN qolio_compatible boolean NOT NULL DEFAULT false;

-- One row per (integration, uid): posted again, a communication is updated. Not partitioned
-- like calls: texts arrive at a fraction of the calls' rate. Erasure covers them; retention
-- does not yet.
CREATE TABLE text_communications (
    id                  uuid PRIMARY KEY,
    integration_id      uuid NOT NULL REFERENCES integrations(id),
    uid                 text NOT NULL,
    uid_derived         boolean NOT NULL,
    organisation_id     uuid NOT NULL REFERENCES organisations(id),
    operator_id         text NOT NULL,
    user_id             uuid NOT NULL REFERENCES users(id),
    department_id       uuid REFERENCES departments(id),
    communication_type  text NOT NULL,
    client_id           text,
    title               text,
    source              text,
    status              text,
    direction           text,
    nps                 float8,
    client_feedback     text,
    email               text,
    started_at          timestamptz,
    custom_fields       jsonb NOT NULL DEFAULT '{}',
    -- The version stored: an older one arriving later changes nothing.
    ingest_id           uuid NOT NULL,
    received_at         timestamptz NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (integration_id, uid)
);
CREATE INDEX text_communications_department_started ON text_communications (department_id, started_at);

-- Parts are upserted by communication_part_id, so a chat can be posted again as it grows;
-- a part a later post leaves out is kept.
CREATE TABLE text_parts (
    communication_id  uuid NOT NULL REFERENCES text_communications(id),
    part_id           text NOT NULL,
    -- Where the part came in the post that last wrote it: the order of parts of one time
    -- (a connector may stamp every part of a chat with the time it posts it).
    position          integer NOT NULL,
    author_type       text NOT NULL CHECK (author_type IN ('client', 'operator')),
    author_id         text,
    body              text NOT NULL,
    created_at        timestamptz NOT NULL,
    content_type      text,
    ingest_id         uuid NOT NULL,
    received_at       timestamptz NOT NULL,
    PRIMARY KEY (communication_id, part_id)
);
