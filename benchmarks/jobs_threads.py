"""One process with all threads against one single-thread process per core, for the paper-sized
CPU discriminator's training step (what `seqgan experiment --jobs N` trades).

Times the median of 5 x 40 bf16 training steps (`step_floor.paper_cpu_step`,
`step_floor.median_ms`) in one process with torch's default thread count, then in as many
single-thread processes as that count, all at once, then the first again. Prints each median and the throughput ratio (steps per second
of the single-thread processes together against the one process).

Run: python3 benchmarks/jobs_threads.py
"""

import statistics
import subprocess
import sys

import torch


def worker(threads: int) -> None:
    from step_floor import median_ms, paper_cpu_step  # this script's folder is on sys.path

    torch.set_num_threads(threads)
    print(f"{median_ms(paper_cpu_step()[-1]):.2f}")


def run(threads: int, processes: int) -> list[float]:
    command = [sys.executable, __file__, "--worker", str(threads)]
    running = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    return [float(p.communicate()[0].split()[-1]) for p in running]


def main() -> None:
    cores = torch.get_num_threads()
    one = run(cores, 1)[0]
    many = run(1, cores)
    again = run(cores, 1)[0]
    print(f"1 process x {cores} threads: {one:.2f} ms a step; {cores} processes x 1 thread at once: "
          f"{' / '.join(f'{t:.2f}' for t in many)} ms; 1 x {cores} again: {again:.2f} ms")
    together = sum(1 / t for t in many)
    print(f"throughput, {cores} single-thread processes / one process: {together * statistics.mean([one, again]):.2f}x")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]))
    else:
        main()
