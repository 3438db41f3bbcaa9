using Peft.Core.Distributed;

// peft-run --nproc-per-node N [--master-addr A] [--master-port P] [--no-gpu-bind] [--wait-on-failure SECONDS] [--] PROGRAM [ARGS...]
// Starts N ranks of PROGRAM (a .dll runs with dotnet) with RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT set (torchrun's contract) and CUDA_VISIBLE_DEVICES = the rank's GPU; exits with the first failed rank's code.
int n = 0, port = 0;
string addr = "127.0.0.1";
bool bind = true;
double? wait = null;
int i = 0;
for (; i < args.Length; i++)
{
    string a = args[i];
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
    if (a == "--") { i++; break; }
    if (!a.StartsWith("--", StringComparison.Ordinal)) break;
    switch (a)
    {
        case "--nproc-per-node" or "--nproc_per_node": n = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
        case "--master-addr" or "--master_addr": addr = Next(); break;
        case "--master-port" or "--master_port": port = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
        case "--no-gpu-bind": bind = false; break;
        case "--wait-on-failure": wait = double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
        default: Console.Error.WriteLine($"peft-run: unknown option {a}"); return 2;
    }
}
if (n < 1 || i >= args.Length)
{
    Console.Error.WriteLine("usage: peft-run --nproc-per-node N [--master-addr A] [--master-port P] [--no-gpu-bind] [--wait-on-failure SECONDS] [--] PROGRAM [ARGS...]");
    return 2;
}
var options = new LaunchOptions(args[i], args[(i + 1)..], n)
{
    MasterAddr = addr, MasterPort = port, BindGpus = bind,
    StopOthersOnFailure = wait is null, FailureGrace = TimeSpan.FromSeconds(wait ?? 0),
};
return ProcessLauncher.Run(options).ExitCode;
