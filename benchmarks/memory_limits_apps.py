"""Peak memory of `iecast video` and `iecast serve` at the default limits (companion of memory_limits.py).

- `video`: a folder of two frames of the given size (the second shifted by 8 pixels), stylized by
  `iecast video FOLDER -s STYLE -o OUT_FOLDER` with the default options; `video-temporal` adds
  `--temporal` (optical flow and the previous frame's features are kept).
- `serve`: the web app (`iecast.serve.app.serve`, default `ServeConfig`) in the measured process,
  one job whose upload is a JPEG of the given size, at the largest output size the page offers.

Each case runs in a fresh process under `/usr/bin/time -v` (peak RSS) and, with `--as-limit`,
`prlimit --as=N`; the process prints its own peak address space (VmPeak). Linux only; minutes a case.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/memory_limits_apps.py --sizes 5471x3647 --as-limit 4000000000
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from PIL import Image

from memory_limits import STYLE, cpu_flags, gradient_image, measure

REPORT_PEAK = ("import re, sys\n"
               "def report_peak():\n"
               "    peak = re.search(r'VmPeak:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
               "    print('VmPeak', peak, file=sys.stderr, flush=True)\n")
VIDEO = REPORT_PEAK + ("import atexit, runpy\n"
                       "atexit.register(report_peak)\n"
                       "sys.argv = ['iecast'] + sys.argv[1:]\n"
                       "runpy.run_module('iecast.cli', run_name='__main__')\n")
# serve in a thread, one upload at the largest size, wait for the result, report, exit
SERVE = REPORT_PEAK + """
import http.client, json, os, socket, threading, time, uuid
from iecast.serve.app import serve
from iecast.serve.config import ServeConfig
content = open(sys.argv[1], 'rb').read()
with socket.socket() as s:
    s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
size = max(ServeConfig().sizes())
threading.Thread(target=serve, kwargs={'port': port}, daemon=True).start()
def call(method, path, body=None, headers=None):
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=600)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse(); data = r.read(); conn.close(); return r.status, data
for _ in range(600):
    try:
        if call('GET', '/api/health')[0] == 200: break
    except OSError: time.sleep(0.5)
b = uuid.uuid4().hex
body = (f'--{b}\\r\\nContent-Disposition: form-data; name="style_name"\\r\\n\\r\\ngreat_wave\\r\\n'
        f'--{b}\\r\\nContent-Disposition: form-data; name="size"\\r\\n\\r\\n{size}\\r\\n'
        f'--{b}\\r\\nContent-Disposition: form-data; name="content"; filename="big.jpg"\\r\\n'
        'Content-Type: image/jpeg\\r\\n\\r\\n').encode() + content + f'\\r\\n--{b}--\\r\\n'.encode()
status, answer = call('POST', '/api/jobs', body, {'Content-Type': f'multipart/form-data; boundary={b}'})
job = json.loads(answer)
url = job.get('status_url')
job = {'status': 'queued'} if status == 202 else {'status': f'refused ({status})', 'error': job.get('error')}
while job.get('status') in ('queued', 'running'):
    time.sleep(1); job = json.loads(call('GET', url)[1])
print(f"iecast-serve: job {job.get('status')} {job.get('width')}x{job.get('height')} {job.get('error') or ''}", file=sys.stderr)
report_peak(); sys.stderr.flush(); os._exit(0 if job.get('status') == 'done' else 1)
"""


def frames_folder(width: int, height: int, folder: Path) -> None:
    """Two frames: a gradient and the same shifted right by 8 pixels."""
    folder.mkdir()
    gradient_image(width, height, folder / "frame_0001.jpg")
    with Image.open(folder / "frame_0001.jpg") as first:
        shifted = Image.new("RGB", first.size)
        shifted.paste(first.crop((0, 0, width - 8, height)), (8, 0))
        shifted.save(folder / "frame_0002.jpg", quality=90)


def run_case(mode: str, source: Path, out: Path, as_limit: int | None) -> dict:
    if mode == "serve":
        command = [sys.executable, "-c", SERVE, str(source)]
    else:
        command = [sys.executable, "-c", VIDEO, "video", str(source), "-s", str(STYLE), "-o", str(out), "--quiet"]
        command += ["--temporal"] if mode == "video-temporal" else []
    return measure(command, as_limit)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["5471x3647"], metavar="WxH")
    ap.add_argument("--modes", nargs="+", default=["video", "video-temporal", "serve"],
                    choices=["video", "video-temporal", "serve"])
    ap.add_argument("--as-limit", type=int, default=None, metavar="BYTES", help="run under prlimit --as=BYTES")
    args = ap.parse_args()
    limit = f"prlimit --as={args.as_limit}" if args.as_limit else "no limit"
    print(f"CPU flags: {cpu_flags()}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'all')}; {limit}; style {STYLE.name}")
    print("| case | frame or upload | megapixels | peak RSS | peak address space | result | seconds |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            width, height = (int(v) for v in size.lower().split("x"))
            frames = Path(tmp) / f"frames_{width}x{height}"
            frames_folder(width, height, frames)
            for mode in args.modes:
                source = frames / "frame_0001.jpg" if mode == "serve" else frames
                r = run_case(mode, source, Path(tmp) / f"out_{mode}_{width}x{height}", args.as_limit)
                result = "ok" if r["rc"] == 0 else f"exit {r['rc']}: {str(r['message'])[:120]}"
                print(f"| {mode} | {width}x{height} | {width * height / 1e6:.1f} | {r['rss_gb']:.2f} GB | {r['vm_gb']:.2f} GB "
                      f"| {result} | {r['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
