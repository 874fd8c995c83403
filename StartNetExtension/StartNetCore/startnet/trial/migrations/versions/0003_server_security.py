"""Server-enforced access and a tamper-evident audit trail.

Both backends: ``audit_log.prev_hash``/``row_hash`` (the hash chain of ``audit_chain.py``,
back-filled for existing rows), ``cycle_versions.later_cycle_warnings_json``, the ``trial_users``
table, patients immutable, and a correction's insert supersedes the previous version inside the
database (so that no client needs UPDATE on ``cycle_versions``).

PostgreSQL only:

* group roles ``startnet_site``, ``startnet_coordinator``, ``startnet_monitor`` (NOLOGIN,
  cluster-wide, created if missing); the tables stay owned by the role running the migration
  (the owner), which site users are not members of;
* privileges: every group SELECTs; site users and coordinators INSERT patients and cycle versions;
  nobody but the owner UPDATEs, DELETEs, TRUNCATEs or ALTERs anything, or writes ``audit_log``;
  CONNECT on the database is revoked from PUBLIC (``startnet trial grant`` grants it per login);
* row-level security on ``patients``, ``cycle_versions``, ``audit_log`` (and ``trial_users``, no
  policy): what a login may see and insert follows its row in ``trial_users`` (login -> role,
  site), read through SECURITY DEFINER functions, so a group membership left over in another
  database of the cluster gives nothing here;
* audit rows are written by SECURITY DEFINER triggers in the same transaction as the change,
  naming ``session_user``; the creator columns are stamped with ``session_user`` too.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

GROUPS = ("startnet_site", "startnet_coordinator", "startnet_monitor")
CHAIN_LOCK = 0x53544E41  # advisory lock serialising audit appends (ids follow chain order)
_TZ = sa.DateTime(timezone=True)
_CYCLE_COLUMNS = ("id", "patient_pk", "cycle", "version", "date", "activity_gbq", "kidney_gy", "kidney_left_gy",
                  "kidney_right_gy", "kidney_uncertainty_pct", "kidney_bed_gy", "labs_json",
                  "capecitabine_mg_per_m2", "body_surface_area_m2", "capecitabine_days", "capecitabine_schedule",
                  "remarks", "dosimetry_source", "dosimetry_json", "deviations_json", "deviation_reason",
                  "correction_reason", "later_cycle_warnings_json", "recorded_at_utc", "recorded_by")
_IMMUTABLE = "cycle_versions are immutable: only superseding a current version is allowed"


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    op.add_column("audit_log", sa.Column("prev_hash", sa.String(64), nullable=True))
    op.add_column("audit_log", sa.Column("row_hash", sa.String(64), nullable=True))
    op.add_column("cycle_versions", sa.Column("later_cycle_warnings_json", sa.Text(), nullable=True))
    op.create_table(
        "trial_users",
        sa.Column("login", sa.String(63), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("site", sa.String(64), nullable=True),
        sa.Column("granted_at_utc", _TZ, nullable=False),
        sa.Column("granted_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("login", name="pk_trial_users"),
        sa.CheckConstraint("role IN ('site', 'coordinator', 'monitor')", name="ck_trial_users_role"),
        sa.CheckConstraint("(role = 'site') = (site IS NOT NULL)", name="ck_trial_users_site"),
    )
    if dialect == "sqlite":
        _sqlite_upgrade(bind)
    elif dialect == "postgresql":
        _postgresql_upgrade(bind)
    else:
        raise RuntimeError(f"no security migration for dialect {dialect}")


# --- hash chain of rows written before this revision --------------------------------------------
def _backfill_hashes(bind) -> None:
    from startnet.trial.audit_chain import FIELDS, GENESIS, row_hash

    rows = bind.execute(sa.text(f"SELECT {', '.join(FIELDS)} FROM audit_log ORDER BY id")).mappings().all()
    prev = GENESIS
    for row in rows:
        h = row_hash(prev, dict(row))
        bind.execute(sa.text("UPDATE audit_log SET prev_hash = :p, row_hash = :h WHERE id = :i"),
                     {"p": prev, "h": h, "i": row["id"]})
        prev = h


# --- SQLite ----------------------------------------------------------------------------------
def _sqlite_upgrade(bind) -> None:
    op.execute("DROP TRIGGER audit_log_no_update")
    _backfill_hashes(bind)
    op.execute("CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
               "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END")
    _sqlite_immutability(_CYCLE_COLUMNS)
    op.execute(
        "CREATE TRIGGER cycle_versions_supersede BEFORE INSERT ON cycle_versions WHEN NEW.version > 1 BEGIN "
        "SELECT RAISE(ABORT, 'a corrected cycle version needs a correction reason') "
        "WHERE NEW.correction_reason IS NULL OR trim(NEW.correction_reason) = ''; "
        "SELECT RAISE(ABORT, 'a corrected cycle version must follow the current version') WHERE NOT EXISTS ("
        "SELECT 1 FROM cycle_versions WHERE patient_pk = NEW.patient_pk AND cycle = NEW.cycle "
        "AND version = NEW.version - 1 AND current = 1); "
        "UPDATE cycle_versions SET current = NULL WHERE patient_pk = NEW.patient_pk AND cycle = NEW.cycle "
        "AND version = NEW.version - 1; END")
    for event in ("UPDATE", "DELETE"):
        op.execute(f"CREATE TRIGGER patients_no_{event.lower()} BEFORE {event} ON patients "
                   "BEGIN SELECT RAISE(ABORT, 'patients are immutable'); END")


def _sqlite_immutability(columns) -> None:
    unchanged = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in columns)
    op.execute("DROP TRIGGER cycle_versions_only_supersede")
    op.execute("CREATE TRIGGER cycle_versions_only_supersede BEFORE UPDATE ON cycle_versions "
               f"WHEN NOT (OLD.current = 1 AND NEW.current IS NULL AND {unchanged}) "
               f"BEGIN SELECT RAISE(ABORT, '{_IMMUTABLE}'); END")


# --- PostgreSQL ------------------------------------------------------------------------------
def _postgresql_upgrade(bind) -> None:
    schema = bind.execute(sa.text("SELECT current_schema()")).scalar()
    database = bind.execute(sa.text("SELECT current_database()")).scalar()
    definer = f'SECURITY DEFINER SET search_path = "{schema}", pg_temp'
    op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    _backfill_hashes(bind)
    op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")

    for group in GROUPS:
        op.execute(f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{group}') THEN "
                   f"CREATE ROLE {group} NOLOGIN; END IF; "
                   f"EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$")

    # who is connected: role and site from trial_users ('owner' for the tables' owner and superusers)
    op.execute(f"""
        CREATE FUNCTION startnet_role() RETURNS text LANGUAGE sql STABLE {definer} AS $$
          SELECT COALESCE(
            (SELECT role FROM trial_users WHERE login = session_user),
            CASE WHEN pg_has_role(session_user, (SELECT relowner FROM pg_class WHERE oid = 'patients'::regclass),
                                  'MEMBER') THEN 'owner' END) $$""")
    op.execute(f"""
        CREATE FUNCTION startnet_site() RETURNS text LANGUAGE sql STABLE {definer} AS $$
          SELECT site FROM trial_users WHERE login = session_user $$""")
    # what the login may see ('*': every site) and write (NULL for monitors): one call per statement
    op.execute(f"""
        CREATE FUNCTION startnet_read_scope() RETURNS text LANGUAGE sql STABLE {definer} AS $$
          SELECT CASE role WHEN 'site' THEN site WHEN 'coordinator' THEN '*' WHEN 'monitor' THEN '*' END
          FROM trial_users WHERE login = session_user $$""")
    op.execute(f"""
        CREATE FUNCTION startnet_write_scope() RETURNS text LANGUAGE sql STABLE {definer} AS $$
          SELECT CASE role WHEN 'site' THEN site WHEN 'coordinator' THEN '*' END
          FROM trial_users WHERE login = session_user $$""")
    op.execute(f"""
        CREATE FUNCTION startnet_whoami(OUT login text, OUT role text, OUT site text) LANGUAGE sql STABLE {definer}
        AS $$ SELECT session_user::text, startnet_role(), startnet_site() $$""")

    # the hash chain (same bytes as startnet.trial.audit_chain.canonical)
    op.execute("""
        CREATE FUNCTION startnet_field(v text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
          SELECT CASE WHEN v IS NULL THEN '~' ELSE octet_length(v)::text || ':' || v END $$""")
    op.execute(f"""
        CREATE FUNCTION startnet_append_audit(p_action text, p_entity text, p_key text, p_patient text,
                                              p_old text, p_new text) RETURNS void LANGUAGE plpgsql {definer} AS $$
        DECLARE
          prev text; new_id integer; at timestamptz := clock_timestamp(); who text := session_user;
          who_site text := (SELECT site FROM trial_users WHERE login = session_user); content text; h text;
        BEGIN
          PERFORM pg_advisory_xact_lock({CHAIN_LOCK});
          SELECT row_hash INTO prev FROM audit_log ORDER BY id DESC LIMIT 1;
          prev := COALESCE(prev, repeat('0', 64));
          new_id := nextval(pg_get_serial_sequence('audit_log', 'id'));
          content := concat_ws('|', startnet_field(new_id::text),
                               startnet_field(to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
                               startnet_field(who), startnet_field(who_site), startnet_field(p_action),
                               startnet_field(p_entity), startnet_field(p_key), startnet_field(p_patient),
                               startnet_field(p_old), startnet_field(p_new));
          h := encode(sha256(convert_to(prev || '|' || content, 'UTF8')), 'hex');
          INSERT INTO audit_log (id, at_utc, user_name, user_site, action, entity, entity_key, patient_id,
                                 old_json, new_json, prev_hash, row_hash)
          VALUES (new_id, at, who, who_site, p_action, p_entity, p_key, p_patient, p_old, p_new, prev, h);
        END $$""")

    # triggers: creators stamped with the login, corrections supersede, every change audited
    op.execute(f"""
        CREATE FUNCTION startnet_patients_before() RETURNS trigger LANGUAGE plpgsql {definer} AS $$
        BEGIN NEW.created_by := session_user; RETURN NEW; END $$""")
    op.execute(f"""
        CREATE FUNCTION startnet_patients_after() RETURNS trigger LANGUAGE plpgsql {definer} AS $$
        BEGIN
          PERFORM startnet_append_audit('enroll', 'patient', NEW.patient_id, NEW.patient_id, NULL,
                                        to_jsonb(NEW)::text);
          RETURN NULL;
        END $$""")
    op.execute(f"""
        CREATE FUNCTION startnet_cycle_versions_before() RETURNS trigger LANGUAGE plpgsql {definer} AS $$
        BEGIN
          NEW.recorded_by := session_user;
          NEW.current := TRUE;
          IF NEW.version > 1 THEN
            IF NEW.correction_reason IS NULL OR btrim(NEW.correction_reason) = '' THEN
              RAISE EXCEPTION 'a corrected cycle version needs a correction reason'
                USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            UPDATE cycle_versions SET current = NULL WHERE patient_pk = NEW.patient_pk AND cycle = NEW.cycle
              AND version = NEW.version - 1 AND current;
            IF NOT FOUND THEN
              RAISE EXCEPTION 'a corrected cycle version must follow the current version'
                USING ERRCODE = 'integrity_constraint_violation';
            END IF;
          END IF;
          RETURN NEW;
        END $$""")
    op.execute(f"""
        CREATE FUNCTION startnet_cycle_versions_after() RETURNS trigger LANGUAGE plpgsql {definer} AS $$
        DECLARE pid text; k text; before_row text;
        BEGIN
          SELECT patient_id INTO pid FROM patients WHERE id = NEW.patient_pk;
          k := pid || '/cycle ' || NEW.cycle;
          IF NEW.version = 1 THEN
            PERFORM startnet_append_audit('add_cycle', 'cycle', k, pid, NULL, (to_jsonb(NEW) - 'current')::text);
            IF NEW.deviations_json IS NOT NULL THEN
              PERFORM startnet_append_audit('deviation', 'cycle', k, pid, NULL,
                jsonb_build_object('deviations', NEW.deviations_json::jsonb, 'reason', NEW.deviation_reason)::text);
            END IF;
          ELSE
            SELECT (to_jsonb(c) - 'current')::text INTO before_row FROM cycle_versions c
              WHERE c.patient_pk = NEW.patient_pk AND c.cycle = NEW.cycle AND c.version = NEW.version - 1;
            PERFORM startnet_append_audit('correct_cycle', 'cycle', k, pid, before_row,
                                          (to_jsonb(NEW) - 'current')::text);
          END IF;
          RETURN NULL;
        END $$""")
    op.execute(f"""
        CREATE FUNCTION startnet_settings_after() RETURNS trigger LANGUAGE plpgsql {definer} AS $$
        BEGIN PERFORM startnet_append_audit('init', 'trial_settings', NEW.id::text, NULL, NULL, NEW.protocol_json);
              RETURN NULL; END $$""")
    op.execute(f"""
        CREATE FUNCTION startnet_users_after() RETURNS trigger LANGUAGE plpgsql {definer} AS $$
        BEGIN
          IF TG_OP = 'DELETE' THEN
            PERFORM startnet_append_audit('revoke', 'user', OLD.login, NULL, to_jsonb(OLD)::text, NULL);
          ELSE
            PERFORM startnet_append_audit('grant', 'user', NEW.login, NULL,
                                          CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD)::text END, to_jsonb(NEW)::text);
          END IF;
          RETURN NULL;
        END $$""")
    op.execute("""
        CREATE FUNCTION startnet_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '% is append-only / immutable: % refused', TG_TABLE_NAME, TG_OP; END $$""")
    op.execute("CREATE TRIGGER patients_before BEFORE INSERT ON patients "
               "FOR EACH ROW EXECUTE FUNCTION startnet_patients_before()")
    op.execute("CREATE TRIGGER patients_after AFTER INSERT ON patients "
               "FOR EACH ROW EXECUTE FUNCTION startnet_patients_after()")
    op.execute("CREATE TRIGGER patients_immutable BEFORE UPDATE OR DELETE ON patients "
               "FOR EACH ROW EXECUTE FUNCTION startnet_refuse()")
    op.execute("CREATE TRIGGER cycle_versions_before BEFORE INSERT ON cycle_versions "
               "FOR EACH ROW EXECUTE FUNCTION startnet_cycle_versions_before()")
    op.execute("CREATE TRIGGER cycle_versions_after AFTER INSERT ON cycle_versions "
               "FOR EACH ROW EXECUTE FUNCTION startnet_cycle_versions_after()")
    op.execute("CREATE TRIGGER trial_settings_after AFTER INSERT ON trial_settings "
               "FOR EACH ROW EXECUTE FUNCTION startnet_settings_after()")
    op.execute("CREATE TRIGGER trial_users_after AFTER INSERT OR UPDATE OR DELETE ON trial_users "
               "FOR EACH ROW EXECUTE FUNCTION startnet_users_after()")
    for table in ("patients", "cycle_versions", "audit_log"):
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION startnet_refuse()")

    # row-level security: the login's row in trial_users decides (an init plan: once per statement)
    read, write = "(SELECT startnet_read_scope())", "(SELECT startnet_write_scope())"
    groups = ", ".join(GROUPS)
    writers = "startnet_site, startnet_coordinator"
    for table in ("patients", "cycle_versions", "audit_log", "trial_users"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY patients_read ON patients FOR SELECT TO {groups} USING ({read} IN ('*', site))")
    op.execute(f"CREATE POLICY patients_enrol ON patients FOR INSERT TO {writers} WITH CHECK ({write} IN ('*', site))")
    # a cycle version is visible / writable with its patient (the subquery is under patients' RLS)
    op.execute(f"CREATE POLICY cycle_versions_read ON cycle_versions FOR SELECT TO {groups} USING "
               "(EXISTS (SELECT 1 FROM patients p WHERE p.id = cycle_versions.patient_pk))")
    op.execute(f"CREATE POLICY cycle_versions_record ON cycle_versions FOR INSERT TO {writers} WITH CHECK "
               f"(EXISTS (SELECT 1 FROM patients p WHERE p.id = cycle_versions.patient_pk "
               f"AND {write} IN ('*', p.site)))")
    op.execute(f"CREATE POLICY audit_log_read ON audit_log FOR SELECT TO {groups} USING "
               f"({read} = '*' OR patient_id IN (SELECT p.patient_id FROM patients p))")

    # privileges
    tables = "trial_settings, patients, cycle_versions, audit_log, trial_users, alembic_version"
    op.execute(f"REVOKE ALL ON {tables} FROM PUBLIC")
    op.execute(f"GRANT SELECT ON trial_settings, alembic_version, patients, cycle_versions, audit_log TO {groups}")
    op.execute(f"GRANT INSERT ON patients, cycle_versions TO {writers}")
    for table in ("patients", "cycle_versions"):
        op.execute(f"DO $$ BEGIN EXECUTE format('GRANT USAGE ON SEQUENCE %s TO {writers}', "
                   f"pg_get_serial_sequence('{table}', 'id')); END $$")
    for fn in _FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
    for fn in ("startnet_role()", "startnet_site()", "startnet_read_scope()", "startnet_write_scope()",
               "startnet_whoami()"):
        op.execute(f"GRANT EXECUTE ON FUNCTION {fn} TO {groups}")
    op.execute(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{database}" FROM PUBLIC')


_FUNCTIONS = ("startnet_role()", "startnet_site()", "startnet_read_scope()", "startnet_write_scope()",
              "startnet_whoami()", "startnet_field(text)",
              "startnet_append_audit(text, text, text, text, text, text)", "startnet_patients_before()",
              "startnet_patients_after()", "startnet_cycle_versions_before()", "startnet_cycle_versions_after()",
              "startnet_settings_after()", "startnet_users_after()", "startnet_refuse()")
_PG_TRIGGERS = (("patients", "patients_before"), ("patients", "patients_after"), ("patients", "patients_immutable"),
                ("cycle_versions", "cycle_versions_before"), ("cycle_versions", "cycle_versions_after"),
                ("trial_settings", "trial_settings_after"), ("trial_users", "trial_users_after"),
                ("patients", "patients_no_truncate"), ("cycle_versions", "cycle_versions_no_truncate"),
                ("audit_log", "audit_log_no_truncate"))


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect == "postgresql":
        database = bind.execute(sa.text("SELECT current_database()")).scalar()
        for policy, table in (("patients_read", "patients"), ("patients_enrol", "patients"),
                              ("cycle_versions_read", "cycle_versions"), ("cycle_versions_record", "cycle_versions"),
                              ("audit_log_read", "audit_log")):
            op.execute(f"DROP POLICY IF EXISTS {policy} ON {table}")
        for table in ("patients", "cycle_versions", "audit_log"):
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        groups = ", ".join(GROUPS)
        op.execute(f"REVOKE ALL ON trial_settings, alembic_version, patients, cycle_versions, audit_log FROM {groups}")
        for table in ("patients", "cycle_versions"):
            op.execute(f"DO $$ BEGIN EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM {groups}', "
                       f"pg_get_serial_sequence('{table}', 'id')); END $$")
        for table, trigger in _PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        for fn in _FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {fn}")
        op.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{database}" TO PUBLIC')
        # the group roles are cluster-wide (other trial databases may use them): left in place
    elif dialect == "sqlite":
        for trigger in ("cycle_versions_supersede", "patients_no_update", "patients_no_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        _sqlite_immutability(tuple(c for c in _CYCLE_COLUMNS if c != "later_cycle_warnings_json"))
    op.drop_table("trial_users")
    op.drop_column("cycle_versions", "later_cycle_warnings_json")
    op.drop_column("audit_log", "row_hash")
    op.drop_column("audit_log", "prev_hash")
