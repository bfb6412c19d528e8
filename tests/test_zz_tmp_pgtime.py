import subprocess, sys, time, tempfile
sys.path.insert(0, "tests")
from test_plan_store import BIG_PLAN
script = BIG_PLAN.format(cats=10, skus=100, months=198)
script = script.replace("import os, sys", "import os, sys, time; T=time.monotonic(); N=[0]")
script = script.replace('    if "INSERT INTO plan_lines" in statement and not os.path.exists(marker):',
  '    N[0]+=1\n    if N[0] < 6 or N[0] % 50 == 0: print(N[0], round(time.monotonic()-T,2), statement[:30].replace(chr(10)," "), executemany, flush=True)\n    if "INSERT INTO plan_lines" in statement and not os.path.exists(marker):')
script += '\nprint("done", N[0], round(time.monotonic()-T,2))\n'
def test_x(postgres_server):
    name = postgres_server.create_database()
    d = tempfile.mkdtemp()
    r = subprocess.run([sys.executable, "-c", script, postgres_server.url(name, "psycopg"), f"{d}/m"], capture_output=True, text=True)
    print(r.stdout[-3000:], r.stderr[-2000:])
