-- raw.annual_return_item.remark (备注) was never filled: free text may name people, so the field
-- dictionary drops it at parse (pii: drop). The column goes, so raw matches the dictionary.
alter table raw.annual_return_item drop column remark;
