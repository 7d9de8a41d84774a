-- wrk script for bench/inference: POST the body in the file named by SLUICE_BENCH_BODY (an Open
-- Inference Protocol JSON request written by bench/inference/run) to the URL's path, and print
-- the 95th percentile latency in wrk's own --latency format so that bench/lib.py's parse_wrk
-- reads it beside p50 and p99 (wrk prints only 50/75/90/99 itself).
local path = os.getenv("SLUICE_BENCH_BODY")
local f = assert(io.open(path, "rb"), "SLUICE_BENCH_BODY must name the request body file")
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
   -- latency:percentile() is in microseconds.
   io.write(string.format("    95%%  %.2fus\n", latency:percentile(95)))
end
