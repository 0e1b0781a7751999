-- A catalogue item's printed product barcode (EAN-8, UPC-A, EAN-13 or ITF-14), which the till's
-- scanner reads (src/web/assets/till.js); none for goods sold loose. One item per barcode in a
-- cooperative (the ledger refuses a second, src/domain/master.rs; the index is the backstop).
ALTER TABLE catalog_items ADD COLUMN barcode TEXT;
CREATE UNIQUE INDEX catalog_items_by_barcode ON catalog_items(cooperative_id, barcode) WHERE barcode IS NOT NULL;
