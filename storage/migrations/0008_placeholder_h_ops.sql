-- Placeholder on branch h-ops only (another helper owns 0008): DELETE at merge.
SELECT 1;
