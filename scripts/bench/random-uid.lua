-- wrk: GET /orders/uid/{order_uid} with uids drawn at random from the file UIDS (environment),
-- one uid a line, as `orderstore-bench fill --uids` writes it.
local uids = {}

function init(args)
  for line in io.lines(os.getenv("UIDS")) do
    uids[#uids + 1] = line
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
  return wrk.format("GET", "/orders/uid/" .. uids[math.random(1, #uids)])
end
