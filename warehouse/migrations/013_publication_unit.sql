-- A publication is the analyst database and its Parquet copy together: its row is written once
-- both are in place (a run killed between them finds no row and publishes again), with what it
-- held: the last batch load and the last edition. A run publishes when either moved since.
alter table audit.publication add column batches_through timestamp;
alter table audit.publication add column editions_through timestamp;
alter table audit.publication add column parquet varchar;
