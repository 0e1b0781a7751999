-- A closed month keeps every household's share in one JSON document on its own row instead of a
-- row per household: an array of [household id, company id, weight, cap or null, amount]. At a
-- million households the rows cost seconds to write and their index as much again; the document
-- is one write, and `hongxin verify` recomputes every household's share from it all the same.
ALTER TABLE month_closes ADD COLUMN shares TEXT NOT NULL DEFAULT '[]';

UPDATE month_closes m SET shares = COALESCE((
    SELECT json_agg(json_build_array(s.household_id, s.company_id, s.weight, s.cap, s.amount)
                    ORDER BY s.household_id)::text
    FROM month_close_shares s
    WHERE s.cooperative_id = m.cooperative_id AND s.month = m.month
), '[]');

DROP TABLE month_close_shares;
