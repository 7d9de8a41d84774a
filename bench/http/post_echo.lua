-- wrk script for bench/http: POST /v1/echo with the shared 1 KB JSON body. The body is written
-- by bench/lib.py (payload_json) to the file named by SLUICE_BENCH_BODY, so wrk, h2load and
-- the gRPC data file all send the same bytes.
local path = os.getenv("SLUICE_BENCH_BODY")
local f = assert(io.open(path, "rb"), "SLUICE_BENCH_BODY must name the request body file")
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
