-- wrk script for bench/gateway: POST the Open Inference Protocol JSON body in the file named by
-- SLUICE_BENCH_BODY to the URL's path with `Authorization: Bearer $SLUICE_BENCH_KEY` (the same
-- bytes go to inference directly, to HAProxy and to the Sluice gateway; only the gateway checks
-- the key). With SLUICE_BENCH_THINK_MS > 0 every connection waits that many milliseconds before
-- each request (wrk's delay() hook; wrk starts a request's latency clock when it writes it, so
-- the pause is not counted): with few connections this holds the offered rate well below what
-- any of the three paths can serve, so latency is measured without queueing (wrk2 is not
-- available). Also prints p95 in wrk's --latency format for bench/lib.py's parse_wrk.
local path = os.getenv("SLUICE_BENCH_BODY")
local f = assert(io.open(path, "rb"), "SLUICE_BENCH_BODY must name the request body file")
local body = f:read("*a")
f:close()
local key = assert(os.getenv("SLUICE_BENCH_KEY"), "SLUICE_BENCH_KEY must hold the API key")
local think = tonumber(os.getenv("SLUICE_BENCH_THINK_MS") or "0") or 0

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

-- Defined only when wanted: wrk takes the (slower) timer path for every request as soon as a
-- script has a delay() function, even one returning 0.
if think > 0 then
   function delay()
      return think
   end
end

function done(summary, latency, requests)
   -- latency:percentile() is in microseconds.
   io.write(string.format("    95%%  %.2fus\n", latency:percentile(95)))
end
