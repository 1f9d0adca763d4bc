-- An operator's acceptance of a full extract that rule *-B02 stopped as far smaller than the
-- source's previous full extract (`fazhi accept-extract`, warehouse/acceptance.py): from then on
-- the accepted batch's rows (audit.batch_table) are the size the source's next full extracts are
-- compared with, until a later full extract loads. Insert-only.
create table audit.extract_acceptance (
    batch_id varchar primary key,      -- the stopped batch (audit.batch, status 'stopped')
    source varchar not null,
    accepted_at timestamp not null,
    accepted_by varchar not null,
    reason varchar not null
);
