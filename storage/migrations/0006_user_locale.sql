-- The user's language (issue 12): users.locale holds a Telegram language_code
-- ("pt-br") or a catalogue language ("pt_BR"); locale_chosen = 1 once the user
-- picked it with /language, so a later update's language_code no longer
-- overwrites it.
ALTER TABLE users ADD COLUMN locale_chosen INTEGER NOT NULL DEFAULT 0;
