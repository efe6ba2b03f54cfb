-- The webhook inbox (filled in by the webhooks issue).
SELECT 1;
