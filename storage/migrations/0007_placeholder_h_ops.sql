-- Placeholder on branch h-ops only (another helper owns 0007): DELETE at merge.
SELECT 1;
