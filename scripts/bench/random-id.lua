-- wrk: GET /orders/{id} with ids drawn at random from 1 to ORDERS (environment, default 1e6).
local orders = tonumber(os.getenv("ORDERS") or "1000000")

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
  return wrk.format("GET", "/orders/" .. math.random(1, orders))
end
