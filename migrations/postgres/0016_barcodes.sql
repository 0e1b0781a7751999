-- A catalogue item's printed product barcode (EAN-8, UPC-A, EAN-13 or ITF-14), which the till's
-- scanner reads (src/web/assets/till.js); none for goods sold loose. Looked up per cooperative.
ALTER TABLE catalog_items ADD COLUMN barcode TEXT;
CREATE INDEX catalog_items_by_barcode ON catalog_items(cooperative_id, barcode) WHERE barcode IS NOT NULL;
