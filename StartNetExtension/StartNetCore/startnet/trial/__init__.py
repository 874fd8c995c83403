"""START-NET trial tracker: patients, cycles, cumulative kidney dose against the protocol rules.

Modules (one responsibility each):

* :mod:`.protocol` - the rules as pure functions over dataclasses (``Protocol``, ``ArmRules``,
  ``CycleDose``, ``next_cycle``, ``dose_summary``, ``check_cycle`` -> ``Deviation`` list);
* :mod:`.eligibility` - inclusion/exclusion criteria and lab thresholds (``evaluate``);
* :mod:`.identity` - acting user and site scoping (``User``, ``current_user``), pseudonym checks
  (``validate_patient_id`` refuses Swedish personal identity numbers);
* :mod:`.models`, :mod:`.db`, ``migrations/`` - SQLAlchemy ORM, engines (SQLite WAL /
  PostgreSQL), Alembic migrations (the only way the schema is created);
* :mod:`.store` - ``TrialStore``: enrol, add and correct cycles (versioned), audit trail;
* :mod:`.audit_chain`, :mod:`.integrity` - the audit hash chain and ``check``'s row-vs-audit
  comparison (tamper evidence);
* :mod:`.users` - PostgreSQL logins: ``grant``/``revoke``/``users``; :mod:`.migrate` - ``migrate-to``;
* :mod:`.planning` - next-cycle planning under uncertainty (P(true cumulative > limit), 95 % activity);
* :mod:`.summary` - ``status``, ``history``, CSV export, ``check_consistency``;
* :mod:`.results` - a cycle's kidney dose from the pipeline's ``results.json``;
* :mod:`.cli` - ``startnet trial ...``.

Who acts: on PostgreSQL the database login, with the role and site granted to it (the server
enforces them: row-level security, audit triggers); on SQLite (no access control)
``--user``/``--user-site`` or env ``STARTNET_USER``/``STARTNET_USER_SITE``, by default the
operating-system user with no site restriction. Typical use::

    startnet trial --db trial.db init
    startnet trial --db trial.db enroll --patient SN-001 --site Uppsala --arm 2 --enrolled 2026-01-05
    startnet trial --db trial.db add-cycle --patient SN-001 --cycle 1 --date 2026-01-12 \\
        --activity-gbq 7.4 --results out/results.json
    startnet trial --db trial.db status --patient SN-001 --json
"""
