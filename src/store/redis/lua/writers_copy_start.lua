-- The writer's copy (writers_copy.lua): ARGV[1] is the write generation of the copy of the
-- session the writer holds ('' if none), taken off before the script reads its arguments.
local held = tonumber(table.remove(ARGV, 1))
