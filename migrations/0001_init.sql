-- Organisations own departments, operators (users), custom field definitions and clients.
CREATE TABLE organisations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE departments (
    id               uuid PRIMARY KEY,
    organisation_id  uuid NOT NULL REFERENCES organisations(id),
    name             text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organisation_id, name)
);

CREATE TABLE users (
    id               uuid PRIMARY KEY,
    organisation_id  uuid NOT NULL REFERENCES organisations(id),
    department_id    uuid REFERENCES departments(id),
    email            text NOT NULL,
    first_name       text NOT NULL DEFAULT '',
    last_name        text NOT NULL DEFAULT '',
    active           boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_org_email ON users (organisation_id, lower(email));

-- token_hash is SHA-256 of a 256-bit random token: the token itself is never stored.
CREATE TABLE integrations (
    id                uuid PRIMARY KEY,
    organisation_id   uuid NOT NULL REFERENCES organisations(id),
    name              text NOT NULL,
    token_hash        bytea NOT NULL,
    success_status    smallint NOT NULL DEFAULT 202 CHECK (success_status IN (200, 202)),
    token_rotated_at  timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organisation_id, name)
);

-- What operator_id is matched against: (integration, integration_uid) -> user.
-- Bindings left out of an import are deactivated, never deleted.
CREATE TABLE user_account_bindings (
    integration_id   uuid NOT NULL REFERENCES integrations(id),
    integration_uid  text NOT NULL,
    user_id          uuid NOT NULL REFERENCES users(id),
    active           boolean NOT NULL DEFAULT true,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, integration_uid)
);

CREATE TABLE custom_field_definitions (
    organisation_id  uuid NOT NULL REFERENCES organisations(id),
    key              text NOT NULL,
    field_type       text NOT NULL CHECK (field_type IN
        ('string', 'number', 'string_array', 'string_url', 'number_array', 'datetime', 'boolean', 'duration')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organisation_id, key)
);

CREATE TABLE clients (
    id               uuid PRIMARY KEY,
    organisation_id  uuid NOT NULL REFERENCES organisations(id),
    external_id      text NOT NULL,
    company_name     text,
    first_name       text,
    last_name        text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organisation_id, external_id)
);

-- (received_at, ingest_id) orders versions of one call: an update only replaces an older one.
CREATE TABLE calls (
    id                    uuid PRIMARY KEY,
    integration_id        uuid NOT NULL REFERENCES integrations(id),
    uid                   text NOT NULL,
    uid_derived           boolean NOT NULL,
    organisation_id       uuid NOT NULL REFERENCES organisations(id),
    operator_id           text NOT NULL,
    user_id               uuid NOT NULL REFERENCES users(id),
    department_id         uuid REFERENCES departments(id),
    client_id             uuid REFERENCES clients(id),
    client                jsonb,
    started_at            timestamptz NOT NULL,
    direction             text,
    duration              double precision,
    client_phone_number   text,
    phone_call_chain_uid  text,
    nps                   double precision,
    media_url             text NOT NULL,
    custom_fields         jsonb NOT NULL DEFAULT '{}',
    transcription         jsonb,
    media_reachable       boolean,
    media_http_status     integer,
    media_content_type    text,
    media_content_length  bigint,
    media_insecure        boolean NOT NULL,
    media_error           text,
    media_checked_at      timestamptz,
    ingest_id             uuid NOT NULL,
    received_at           timestamptz NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (integration_id, uid)
);
CREATE INDEX calls_department_started ON calls (department_id, started_at);

-- Calls the worker could not store, kept whole (message) for replay.
CREATE TABLE dead_letters (
    id               uuid PRIMARY KEY,
    ingest_id        uuid NOT NULL UNIQUE,
    integration_id   uuid,             -- unknown when the message could not be decoded
    operator_id      text,
    uid              text,
    reason           text NOT NULL,
    detail           text NOT NULL,
    message          jsonb NOT NULL,
    attempts         integer NOT NULL DEFAULT 1,
    first_failed_at  timestamptz NOT NULL DEFAULT now(),
    last_failed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_lookup ON dead_letters (integration_id, uid);
CREATE INDEX dead_letters_operator ON dead_letters (integration_id, operator_id, reason);

-- Accepted by a gateway, not yet stored: what lets GET say "queued" rather than 404.
-- Written in batches off the request path; the worker removes the row when it stores.
CREATE TABLE queued_calls (
    ingest_id       uuid PRIMARY KEY,
    integration_id  uuid NOT NULL,
    uid             text NOT NULL,
    received_at     timestamptz NOT NULL
);
CREATE INDEX queued_calls_lookup ON queued_calls (integration_id, uid);
