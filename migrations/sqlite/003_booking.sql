-- Booking drafts and idempotency keys (filled in by the booking issue).
SELECT 1;
