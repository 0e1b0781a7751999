-- Takes a database back to before migrations/postgres/0016_barcodes.sql, as the release before it
-- left it: the upgrade test (tests/upgrade.rs) then upgrades it again.
DROP INDEX catalog_items_by_barcode;
ALTER TABLE catalog_items DROP COLUMN barcode;
