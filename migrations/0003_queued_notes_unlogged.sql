-- Queued notes only let GET say "queued" before a worker has stored a call; losing them in a
-- crash costs nothing (GET says 404 until the call is stored). Unlogged, every accepted call
-- no longer writes them to the WAL twice (insert, then the worker's delete).
ALTER TABLE queued_calls SET UNLOGGED;
