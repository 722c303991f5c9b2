"""Runs a gan-server child process on a free loopback port (for tests and scripts).

    with LocalServer(data_dir, "--default_dataset", "synthetic") as server:
        client = Client(server.address)

The binary is $GAN_SERVER_BINARY, or <repo>/build/bin/gan-server when it is unset.
"""

import os
import re
import select
import signal
import subprocess


_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def server_binary():
    return os.environ.get("GAN_SERVER_BINARY") or os.path.join(_REPO, "build", "bin", "gan-server")


class LocalServer:
    """Starts `gan-server --listen LISTEN --data_dir DATA_DIR EXTRA_ARGS...` (LISTEN defaults to a
    free loopback port), waits for its "listening ... (port N)" line and stops it with SIGTERM
    (the graceful path) on exit."""

    def __init__(self, data_dir, *extra_args, listen="127.0.0.1:0", start_timeout=30.0,
                 stderr=None):
        self.binary = server_binary()
        self.args = [self.binary, "--listen", listen, "--data_dir", data_dir,
                     *extra_args]
        self.start_timeout = start_timeout
        self.stderr = stderr
        self.process = None
        self.port = None
        self.address = None

    def start(self):
        if not os.access(self.binary, os.X_OK):
            raise FileNotFoundError(f"gan-server not found at {self.binary} (set "
                                    "GAN_SERVER_BINARY or build the repo into build/)")
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self.stderr,
                                        text=True)
        ready, _, _ = select.select([self.process.stdout], [], [], self.start_timeout)
        line = self.process.stdout.readline() if ready else ""
        match = re.search(r"\(port (\d+)\)", line)
        if match is None:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"gan-server did not start (first line: {line!r}, "
                               f"exit {self.process.returncode})")
        self.port = int(match.group(1))
        self.address = f"127.0.0.1:{self.port}"
        return self

    def stop(self, timeout=30.0):
        """SIGTERM, then the exit status (SIGKILL and an error if it outlives `timeout`)."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"gan-server ignored SIGTERM for {timeout} s; killed")
        finally:
            self.process.stdout.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
