-- What the pre-publish audits found (warehouse/audit.py, warehouse/audits/*.sql): every finding
-- of every check, `fail` (the publish was blocked) or `warn` (recorded, logged, published anyway).
create table audit.audit_finding (
    checked_at timestamp not null,
    audit varchar not null,         -- the audit's name (its file under warehouse/audits/)
    severity varchar not null,      -- fail | warn
    detail varchar
);
