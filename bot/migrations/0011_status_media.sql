-- What kind of message a job's status message is: NULL = text (sendMessage), 'photo' = a photo
-- with the status as its caption (PREVIEW=on: the live preview, and the finished video replaces
-- it by editMessageMedia). Edits must use the method that fits the message.
ALTER TABLE jobs ADD COLUMN status_media TEXT;
