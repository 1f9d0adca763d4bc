-- Whether a batch is a full extract or an incremental pull: a full extract far smaller than the
-- previous full extract of its source is suspicious; an incremental pull is small by nature.
alter table audit.batch add column extract_kind varchar default 'full';
