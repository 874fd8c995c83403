"""PostgreSQL: the protocol rules a cycle version must follow, enforced by the server.

A BEFORE INSERT trigger on ``cycle_versions`` checks every new version, whoever inserts it (the
client or raw SQL), against the protocol stored in ``trial_settings`` (id 1, written by ``init``:
``kidney_limit_gy``, ``nominal_activity_gbq``, ``activity_tolerance_fraction``, ``limit_basis``,
``arms[].dose_limited``/``fixed_cycles``) and the patient's current cycle versions, as
``startnet.trial.protocol.check_cycle`` does in the client. The error (SQLSTATE 23514,
check_violation) starts ``protocol rule NAME:`` where NAME is

* ``cycle_numbering``: a new cycle (version 1) must be the patient's highest cycle + 1 (no gap, no
  second current version of a cycle);
* ``cycle_date``: not before enrolment, after the previous cycle, before the next one (corrections);
* ``activity``: activity_gbq > 0 and finite; ``kidney_dose``: kidney_gy finite and > 0, the
  per-side doses, uncertainty and BED finite and >= 0 (a NaN would poison the cumulative dose);
* ``dose_limit_reached``: a cycle in a dose-limited arm once the cumulative kidney dose of the
  earlier cycles (on the protocol's ``limit_basis``) has reached ``kidney_limit_gy``;
  ``fixed_cycles_exceeded``: a cycle beyond an arm's fixed count;
  ``activity_above_maximum``: activity above ``nominal_activity_gbq * (1 + activity_tolerance_fraction)``.

The last three are protocol deviations: a row that records the deviation (its code in
``deviations_json`` and a non-blank ``deviation_reason``, what the client writes with
``--deviation-reason``) is accepted, and audited as a deviation by migration 0003's trigger. The
dose-based maximum of the next cycle (remaining dose / planning Gy/GBq, confidence planning) and
the interval window need the planning model and stay client-side checks.

The trigger takes the patient's advisory lock (``store.PATIENT_LOCK_CLASS``, the lock of
``startnet_locked_cycles``; re-entrant for the client, which already holds it) before it reads
the history, so two raw inserts for one patient are serialised. It is SECURITY DEFINER (it reads
the patient's whole history) but checks nothing for a patient the login may not write: the
row-level security policy refuses that row without the trigger saying anything about it.

SQLite: nothing (no server; the client checks the rules, and anyone who can write the file can
write anything).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PATIENT_LOCK_CLASS = 0x53544E50  # = startnet.trial.store.PATIENT_LOCK_CLASS
FUNCTIONS = ("startnet_cycle_protocol_rules()", "startnet_deviation_declared(text, text, text)")
TRIGGER = "cycle_versions_protocol_rules"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema = bind.exec_driver_sql("SELECT current_schema()").scalar()
    definer = f'SECURITY DEFINER SET search_path = "{schema}", pg_temp'
    op.execute(f"""
        CREATE FUNCTION startnet_deviation_declared(p_deviations text, p_reason text, p_code text) RETURNS boolean
        LANGUAGE plpgsql IMMUTABLE {definer} AS $$
        BEGIN
          RETURN p_reason IS NOT NULL AND btrim(p_reason) <> '' AND p_deviations IS NOT NULL
                 AND jsonb_typeof(p_deviations::jsonb) = 'array'
                 AND p_deviations::jsonb @> jsonb_build_array(jsonb_build_object('code', p_code));
        EXCEPTION WHEN invalid_text_representation THEN
          RETURN FALSE;  -- not JSON: declares nothing
        END $$""")
    op.execute(f"""
        CREATE FUNCTION startnet_cycle_protocol_rules() RETURNS trigger LANGUAGE plpgsql {definer} AS $$
        DECLARE
          pat record; prot jsonb; rules jsonb; basis text; limit_gy float8; nominal float8; tolerance float8;
          n_prior integer; last_cycle integer; last_date date; next_date date; cumulative numeric;
          remaining numeric; code text; what text; scope text;
        BEGIN
          SELECT id, patient_id, site, arm, enrolled INTO pat FROM patients WHERE id = NEW.patient_pk;
          IF NOT FOUND THEN
            RETURN NEW;  -- the foreign key refuses it
          END IF;
          scope := startnet_write_scope();
          IF startnet_role() IS DISTINCT FROM 'owner' AND (scope IS NULL OR scope NOT IN ('*', pat.site)) THEN
            RETURN NEW;  -- not this login's patient: row-level security refuses it, the rules say nothing
          END IF;
          what := format('cycle %s of patient %s', NEW.cycle, pat.patient_id);
          PERFORM pg_advisory_xact_lock({PATIENT_LOCK_CLASS}, NEW.patient_pk);

          SELECT protocol_json::jsonb INTO prot FROM trial_settings WHERE id = 1;
          IF prot IS NULL THEN
            RAISE EXCEPTION 'protocol rule protocol: % refused: the trial database holds no protocol (run init)',
              what USING ERRCODE = 'check_violation';
          END IF;
          SELECT a INTO rules FROM jsonb_array_elements(prot -> 'arms') a WHERE (a ->> 'arm')::integer = pat.arm;
          IF rules IS NULL THEN
            RAISE EXCEPTION 'protocol rule arm: % refused: arm % is not defined by the stored protocol',
              what, pat.arm USING ERRCODE = 'check_violation';
          END IF;
          limit_gy := (prot ->> 'kidney_limit_gy')::float8;
          nominal := (prot ->> 'nominal_activity_gbq')::float8;
          tolerance := COALESCE((prot ->> 'activity_tolerance_fraction')::float8, 0);
          basis := COALESCE(prot ->> 'limit_basis', 'mean');

          -- the row itself
          IF NOT (NEW.activity_gbq > 0 AND NEW.activity_gbq < 'Infinity'::float8) THEN
            RAISE EXCEPTION 'protocol rule activity: % refused: activity_gbq must be > 0 and finite, got %',
              what, NEW.activity_gbq USING ERRCODE = 'check_violation';
          END IF;
          IF NOT (NEW.kidney_gy > 0 AND NEW.kidney_gy < 'Infinity'::float8)
             OR NOT COALESCE(NEW.kidney_left_gy >= 0 AND NEW.kidney_left_gy < 'Infinity'::float8, TRUE)
             OR NOT COALESCE(NEW.kidney_right_gy >= 0 AND NEW.kidney_right_gy < 'Infinity'::float8, TRUE)
             OR NOT COALESCE(NEW.kidney_uncertainty_pct >= 0 AND NEW.kidney_uncertainty_pct < 'Infinity'::float8,
                             TRUE)
             OR NOT COALESCE(NEW.kidney_bed_gy >= 0 AND NEW.kidney_bed_gy < 'Infinity'::float8, TRUE) THEN
            RAISE EXCEPTION 'protocol rule kidney_dose: % refused: kidney_gy must be finite and > 0 and the per-side '
              'doses, uncertainty and BED finite and >= 0 (kidney_gy %, left %, right %)', what, NEW.kidney_gy,
              NEW.kidney_left_gy, NEW.kidney_right_gy USING ERRCODE = 'check_violation';
          END IF;

          -- the patient's history: current versions of the earlier cycles (read after the lock)
          SELECT count(*), max(cycle), max(date),
                 round(COALESCE(sum(CASE WHEN basis = 'max_side'
                                         THEN COALESCE(GREATEST(kidney_left_gy, kidney_right_gy), kidney_gy)
                                         ELSE kidney_gy END), 0)::numeric, 9)
            INTO n_prior, last_cycle, last_date, cumulative
            FROM cycle_versions WHERE patient_pk = NEW.patient_pk AND current IS TRUE AND cycle < NEW.cycle;
          IF NEW.version = 1 THEN
            IF NEW.cycle <> COALESCE(last_cycle, 0) + 1 OR EXISTS (
                SELECT 1 FROM cycle_versions WHERE patient_pk = NEW.patient_pk AND current IS TRUE
                AND cycle >= NEW.cycle) THEN
              RAISE EXCEPTION 'protocol rule cycle_numbering: % refused: the next cycle to record is % (cycles are '
                'numbered 1, 2, 3 ... in order, each recorded once; use a correction to change one)', what,
                (SELECT COALESCE(max(cycle), 0) + 1 FROM cycle_versions WHERE patient_pk = NEW.patient_pk
                 AND current IS TRUE) USING ERRCODE = 'check_violation';
            END IF;
          END IF;
          IF NEW.date < pat.enrolled THEN
            RAISE EXCEPTION 'protocol rule cycle_date: % refused: date % is before enrolment %', what, NEW.date,
              pat.enrolled USING ERRCODE = 'check_violation';
          END IF;
          IF last_date IS NOT NULL AND NEW.date <= last_date THEN
            RAISE EXCEPTION 'protocol rule cycle_date: % refused: date % is not after cycle % (%)', what, NEW.date,
              last_cycle, last_date USING ERRCODE = 'check_violation';
          END IF;
          SELECT min(date) INTO next_date FROM cycle_versions
            WHERE patient_pk = NEW.patient_pk AND current IS TRUE AND cycle > NEW.cycle;
          IF next_date IS NOT NULL AND NEW.date >= next_date THEN
            RAISE EXCEPTION 'protocol rule cycle_date: % refused: date % is not before the next cycle (%)', what,
              NEW.date, next_date USING ERRCODE = 'check_violation';
          END IF;

          -- deviations: refused unless the row records them with a reason
          remaining := round(limit_gy::numeric - cumulative, 9);
          IF (rules ->> 'fixed_cycles') IS NOT NULL AND n_prior >= (rules ->> 'fixed_cycles')::integer THEN
            code := CASE WHEN COALESCE((rules ->> 'dose_limited')::boolean, TRUE) THEN 'dose_limit_reached'
                         ELSE 'fixed_cycles_exceeded' END;
            IF NOT startnet_deviation_declared(NEW.deviations_json, NEW.deviation_reason, code) THEN
              RAISE EXCEPTION 'protocol rule %: % refused: arm % has % fixed cycles, all given (record it only as a '
                'protocol deviation with its reason)', code, what, pat.arm, rules ->> 'fixed_cycles'
                USING ERRCODE = 'check_violation';
            END IF;
          ELSIF COALESCE((rules ->> 'dose_limited')::boolean, TRUE) AND remaining <= 0 THEN
            IF NOT startnet_deviation_declared(NEW.deviations_json, NEW.deviation_reason, 'dose_limit_reached') THEN
              RAISE EXCEPTION 'protocol rule dose_limit_reached: % refused: cumulative kidney dose % Gy has reached '
                'the % Gy limit (limit basis %; record it only as a protocol deviation with its reason)', what,
                round(cumulative, 2), limit_gy, basis USING ERRCODE = 'check_violation';
            END IF;
          ELSIF NEW.activity_gbq > nominal * (1 + tolerance) + 1e-9 THEN
            IF NOT startnet_deviation_declared(NEW.deviations_json, NEW.deviation_reason,
                                               'activity_above_maximum') THEN
              RAISE EXCEPTION 'protocol rule activity_above_maximum: % refused: activity % GBq is above the '
                'protocol''s maximum % GBq per cycle (nominal % GBq, tolerance % %%; record it only as a protocol '
                'deviation with its reason)', what, NEW.activity_gbq, nominal * (1 + tolerance), nominal,
                tolerance * 100 USING ERRCODE = 'check_violation';
            END IF;
          END IF;
          RETURN NEW;
        END $$""")
    op.execute(f"CREATE TRIGGER {TRIGGER} BEFORE INSERT ON cycle_versions "
               "FOR EACH ROW EXECUTE FUNCTION startnet_cycle_protocol_rules()")
    for fn in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON cycle_versions")
    for fn in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
