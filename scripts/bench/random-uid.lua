-- wrk: GET /orders/uid/{order_uid} with uids drawn at random from the file UIDS (environment),
-- one uid a line, as `orderstore-bench fill --uids` writes it.
--
-- The uids are kept as one string, not as a table of a million strings: LuaJIT's collector
-- walks every string of such a table on each cycle, which stalled wrk itself and showed up
-- as the server's p99. Uids of equal length (the generator's are)
-- are cut from the string by position; otherwise the table is the fallback.
local blob, width, count
local uids = {}

function init(args)
  local file = assert(io.open(os.getenv("UIDS"), "rb"))
  local text = file:read("*a")
  file:close()
  -- Every line as long as the first: as many newlines as lines, each where it should be.
  width = text:find("\n", 1, true)
  if width and #text % width == 0 then
    local newlines = select(2, text:gsub("\n", "\n"))
    if newlines == #text / width then
      blob, count = text, newlines
      for at = width, #text, width do
        if text:byte(at) ~= 10 then
          blob = nil
          break
        end
      end
    end
  end
  if not blob then
    for line in text:gmatch("[^\n]+") do
      uids[#uids + 1] = line
    end
    count = #uids
  end
  text = nil
  collectgarbage()
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
  local index = math.random(1, count)
  local uid
  if blob then
    local start = (index - 1) * width + 1
    uid = blob:sub(start, start + width - 2)
  else
    uid = uids[index]
  end
  return wrk.format("GET", "/orders/uid/" .. uid)
end
