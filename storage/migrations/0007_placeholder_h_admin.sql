-- Placeholder on branch h-admin only (h-pay owns 0007): DELETE at merge.
SELECT 1;
