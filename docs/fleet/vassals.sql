-- The vassals table for `emperor = pg://...` (docs/fleet.md): uWSGI emperor-pg's
-- columns, plus `host` for per-host rows. test/e2e/emperor-pg.test.ts runs this file.

CREATE TABLE vassals (
  name   text NOT NULL CHECK (name ~ '^[^./][^/]*[.](ini|xml|json)$'),
  host   text NOT NULL DEFAULT '*',
  config text NOT NULL,
  ts     timestamptz NOT NULL DEFAULT clock_timestamp(),
  uid    integer CHECK (uid > 0),
  gid    integer CHECK (gid > 0),
  PRIMARY KEY (name, host)
);

-- An emperor reloads a vassal when its ts changes, and only then: give every changed
-- row a new ts, so nobody has to remember it.
CREATE FUNCTION vassals_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.ts IS NOT DISTINCT FROM OLD.ts
     AND (NEW.config, NEW.uid, NEW.gid) IS DISTINCT FROM (OLD.config, OLD.uid, OLD.gid) THEN
    NEW.ts := clock_timestamp();
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER vassals_touch BEFORE UPDATE ON vassals
  FOR EACH ROW EXECUTE FUNCTION vassals_touch();

-- Wake every emperor (LISTEN emperor) once per statement that changed the table; the
-- notification is delivered when the transaction commits, not before.
CREATE FUNCTION vassals_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('emperor', '');
  RETURN NULL;
END $$;
CREATE TRIGGER vassals_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON vassals
  FOR EACH STATEMENT EXECUTE FUNCTION vassals_notify();
