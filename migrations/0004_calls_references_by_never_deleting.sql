-- A stored call points at its integration, organisation, operator (user), department and
-- client. Foreign keys kept that true by checking each reference of each inserted call and
-- locking the row it names (FOR KEY SHARE); every call names the same organisation and
-- integration, so concurrent batches kept sharing those locks. Measured on the 2-core bench
-- machine, 500-row batches from 2 sessions: 65-73 batches/s with the five keys, 160-190
-- without; Postgres spent more on the keys than on the rows.
--
-- The guarantee now comes from the other side: the worker takes every id it writes from
-- rows it just read, and those rows are never deleted (users and bindings are deactivated,
-- never removed), which the database enforces below. The other tables keep their keys.
ALTER TABLE calls
    DROP CONSTRAINT calls_integration_id_fkey,
    DROP CONSTRAINT calls_organisation_id_fkey,
    DROP CONSTRAINT calls_user_id_fkey,
    DROP CONSTRAINT calls_department_id_fkey,
    DROP CONSTRAINT calls_client_id_fkey;

CREATE FUNCTION refuse_removal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never deleted, nor their ids changed: stored calls point at them',
        TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation',
              HINT = 'Deactivate a user or a binding instead (users.active, user_account_bindings.active).';
END
$$;

CREATE TRIGGER organisations_kept BEFORE DELETE OR TRUNCATE ON organisations
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_removal();
CREATE TRIGGER integrations_kept BEFORE DELETE OR TRUNCATE ON integrations
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_removal();
CREATE TRIGGER users_kept BEFORE DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_removal();
CREATE TRIGGER departments_kept BEFORE DELETE OR TRUNCATE ON departments
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_removal();
CREATE TRIGGER clients_kept BEFORE DELETE OR TRUNCATE ON clients
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_removal();

CREATE TRIGGER organisations_id_kept BEFORE UPDATE OF id ON organisations
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION refuse_removal();
CREATE TRIGGER integrations_id_kept BEFORE UPDATE OF id ON integrations
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION refuse_removal();
CREATE TRIGGER users_id_kept BEFORE UPDATE OF id ON users
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION refuse_removal();
CREATE TRIGGER departments_id_kept BEFORE UPDATE OF id ON departments
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION refuse_removal();
CREATE TRIGGER clients_id_kept BEFORE UPDATE OF id ON clients
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION refuse_removal();
