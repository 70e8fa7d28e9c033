from onerec_trt.commands import add_data_arguments, add_model_argument

HELP = "ModelOpt FP8 PTQ of the exported graph, calibrated on real users' training histories"


def add_arguments(p):
    add_model_argument(p)
    p.add_argument("--onnx", default="runs/default/onnx", help="the export stage's folder")
    p.add_argument("--out", default="runs/default/fp8", help="folder for the FP8 graphs")
    add_data_arguments(p)
    p.add_argument("--calib-users", type=int, default=512,
                   help="training-split users to calibrate on")
    p.add_argument("--calib-batch", type=int, default=64, help="users per calibration batch")
    p.add_argument("--calib-method", default="max", help="ModelOpt calibration algorithm")
    p.add_argument("--calib-data", default=None,
                   help=".npy [users, S] item-id histories to calibrate on instead")
    p.add_argument("--exclude", action="append", default=[], metavar="REGEX",
                   help="keep matching layers (e.g. '^heads\\\\.') in bf16; repeatable")
    p.add_argument("--quantize-all", action="store_true",
                   help="no default exclusions: the output heads and the context K/V "
                        "projections go to FP8 too (by default they stay bf16)")
    p.add_argument("--exclusions", default=None, help="exclusions.json from 'onerec-trt analyze'")
    p.add_argument("--calibration", default=None,
                   help="calibration.json of an earlier run: reuse its scales, skip calibration")
    p.add_argument("--force", action="store_true", help="replace an existing --out")


def run(args) -> int:
    from onerec_trt.quantize import QuantizeOptions, quantize

    quantize(QuantizeOptions(
        model=args.model, onnx=args.onnx, out=args.out, calib_users=args.calib_users,
        calib_batch=args.calib_batch, calib_method=args.calib_method, calib_data=args.calib_data,
        exclude=args.exclude, default_exclusions=not args.quantize_all,
        exclusions=args.exclusions, calibration=args.calibration,
        dataset=args.dataset, data=args.data, columns=args.columns, force=args.force))
    return 0
