from onerec_trt.commands import add_data_arguments, add_model_argument

HELP = "is the model FP8-safe and is FP8 worth it: statistics, FP8 error per layer, roofline"


def _names(text: str) -> list[str]:
    return [] if text.strip().lower() in ("", "none") else [
        t.strip() for t in text.split(",") if t.strip()]


def add_arguments(p):
    add_model_argument(p)
    p.add_argument("--out", default="runs/default/analysis", help="folder for the report")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    g = p.add_argument_group("activations (real users' histories through the real generation)")
    add_data_arguments(g)
    g.add_argument("--calib-users", type=int, default=256, help="training-split users")
    g.add_argument("--calib-batch", type=int, default=64, help="users per batch")
    g.add_argument("--beam", type=int, default=20, help="beam width B of the generation")
    g.add_argument("--calib-data", default=None,
                   help=".npy [users, S] item-id histories to use instead")
    g.add_argument("--max-rows", type=int, default=65536,
                   help="input rows kept per layer (a uniform sample beyond that)")
    r = p.add_argument_group("reference models")
    r.add_argument("--references", default="traditional,lm",
                   help="comma list of traditional (DCN-v2 on MovieLens-1M) and lm "
                        "(all-MiniLM-L6-v2), or 'none'")
    r.add_argument("--traditional-steps", type=int, default=1500, help="DCN training steps")
    r.add_argument("--traditional-samples", type=int, default=8192,
                   help="held-out ratings for the DCN's activations")
    r.add_argument("--lm-sentences", type=int, default=512,
                   help="MovieLens titles fed to the language model")
    p.add_argument("--threshold-db", type=float, default=20.0,
                   help="propose excluding layers whose per-tensor FP8 SQNR (weight, input or "
                        "GEMM output) is below this")
    f = p.add_argument_group("roofline")
    f.add_argument("--gpus", default="", help="comma list from gpus.json (default: all: "
                                              "H100-SXM, H200, L40S, A100)")
    f.add_argument("--presets", default="paper", help="model presets to add (comma list)")
    f.add_argument("--users", type=int, default=32, help="users per request N")
    f.add_argument("--roofline-beam", type=int, default=None,
                   help="B for the roofline (default: --beam; 512 for the paper preset)")
    f.add_argument("--candidates", type=int, default=512,
                   help="candidates per user of the DCN's ranking request")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads: the work is many small ops, and on a busy 2-core "
                        "machine two threads made it 2x slower; 0 = torch's default")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    import torch

    from onerec_trt.analysis import AnalyzeOptions, analyze

    if args.threads < 0:
        from onerec_trt.errors import user_error

        raise user_error(f"--threads must be 0 (torch's default) or positive, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    analyze(AnalyzeOptions(
        model=args.model, out=args.out, force=args.force, calib_users=args.calib_users,
        calib_batch=args.calib_batch, beam=args.beam, calib_data=args.calib_data,
        dataset=args.dataset, data=args.data, columns=args.columns, max_rows=args.max_rows,
        references=_names(args.references), traditional_steps=args.traditional_steps,
        traditional_samples=args.traditional_samples, lm_sentences=args.lm_sentences,
        threshold_db=args.threshold_db, gpus=_names(args.gpus),
        presets=_names(args.presets), roofline_users=args.users,
        roofline_beam=args.roofline_beam, roofline_candidates=args.candidates, seed=args.seed),
        progress=not args.quiet)
    return 0
