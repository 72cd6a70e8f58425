-- reserved for branch pgsubmit's migration 0003 (submit), which replaces this file at merge
--
-- The loader refuses gaps in the versions, and complete-and-claim-next (0004_apply_held)
-- was numbered after the submit work's migration. This step changes nothing.
SELECT 1;
