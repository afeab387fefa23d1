-- luacheck for the Redis backend's Lua (server/backends/redis/scripts/*.lua).

-- Redis runs Lua 5.1 and hands each script these globals; a script may not assign a
-- global, so all of them are read-only.
stds.redis = { read_globals = { "redis", "KEYS", "ARGV", "cjson", "cmsgpack", "bit", "struct" } }

-- scripts.py runs every script with common.lua prepended, so common.lua's local
-- functions are a library: in the scripts each is already defined, and in common.lua
-- one that it does not call itself is not unused. A new common function goes here.
local common = {
  "now_ms", "split", "mget", "level_of", "member_level", "unpack_value", "check",
  "parse_line", "note_missing", "prune", "extend", "LEDGER", "ledger_ttl", "bump",
}
stds.common = { read_globals = common }
local library = {}
for _, name in ipairs(common) do library[#library + 1] = "211/" .. name end

std = "lua51+redis"
local scripts = "server/backends/redis/scripts/"
files[scripts .. "*.lua"] = { std = "lua51+redis+common" }
files[scripts .. "common.lua"] = { std = "lua51+redis", ignore = library }
