-- Analytics: events, page views, sessions, salts (filled in by the admin and analytics issue).
SELECT 1;
