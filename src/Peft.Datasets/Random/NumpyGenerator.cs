using System.Numerics;

namespace Peft.Datasets.Random;

/// <summary>
/// A port of what <c>numpy.random.default_rng(seed)</c> does for the calls Hugging Face datasets makes:
/// <c>SeedSequence(seed)</c> → 4 uint64 words → <c>PCG64</c> (128-bit LCG, XSL-RR output, 32-bit draws buffered from
/// one 64-bit draw), <c>permutation(n)</c> (Fisher–Yates from the end with numpy's masked rejection
/// <c>random_interval</c>), and <c>choice(a, size, replace=False)</c> (Floyd's algorithm with Lemire bounded draws,
/// then a shuffle). Written from reading numpy's sources (bit_generator.pyx, pcg64.h, _generator.pyx,
/// distributions.c); checked against published outputs of numpy (see the tests).
/// </summary>
public sealed class NumpyGenerator
{
    private const uint InitA = 0x43b0d7e5, MultA = 0x931e8875, InitB = 0x8b51f9dd, MultB = 0x58f38ded;
    private const uint MixMultL = 0xca01f9dd, MixMultR = 0x4973f715;
    private static readonly UInt128 Multiplier = new(2549297995355413924UL, 4865540595714422341UL);

    private UInt128 _state;
    private readonly UInt128 _inc;
    private bool _hasUint32;
    private uint _uinteger;

    /// <summary>Same stream as <c>numpy.random.default_rng(seed)</c> (non-negative seed).</summary>
    public NumpyGenerator(ulong seed)
    {
        var pool = SeedPool(seed);
        var words = GenerateState(pool, 8);
        ulong s0 = words[0] | ((ulong)words[1] << 32), s1 = words[2] | ((ulong)words[3] << 32);
        ulong i0 = words[4] | ((ulong)words[5] << 32), i1 = words[6] | ((ulong)words[7] << 32);
        var initState = new UInt128(s0, s1);
        var initSeq = new UInt128(i0, i1);
        _state = 0;
        _inc = (initSeq << 1) | 1;
        Step();
        _state += initState;
        Step();
    }

    private static uint HashMix(uint value, ref uint hashConst)
    {
        value ^= hashConst;
        hashConst *= MultA;
        value *= hashConst;
        value ^= value >> 16;
        return value;
    }

    private static uint Mix(uint x, uint y)
    {
        uint r = MixMultL * x - MixMultR * y;
        return r ^ (r >> 16);
    }

    private static uint[] SeedPool(ulong seed)
    {
        // entropy → little-endian uint32 words (0 → [0]); pool of 4 words mixed as numpy's SeedSequence.mix_entropy.
        var entropy = new List<uint>();
        do { entropy.Add((uint)seed); seed >>= 32; } while (seed != 0);
        var pool = new uint[4];
        uint hc = InitA;
        for (int i = 0; i < pool.Length; i++) pool[i] = HashMix(i < entropy.Count ? entropy[i] : 0u, ref hc);
        for (int src = 0; src < pool.Length; src++)
            for (int dst = 0; dst < pool.Length; dst++)
                if (src != dst) pool[dst] = Mix(pool[dst], HashMix(pool[src], ref hc));
        for (int src = pool.Length; src < entropy.Count; src++)
            for (int dst = 0; dst < pool.Length; dst++)
                pool[dst] = Mix(pool[dst], HashMix(entropy[src], ref hc));
        return pool;
    }

    private static uint[] GenerateState(uint[] pool, int nWords)
    {
        var state = new uint[nWords];
        uint hc = InitB;
        for (int i = 0; i < nWords; i++)
        {
            uint v = pool[i % pool.Length];
            v ^= hc;
            hc *= MultB;
            v *= hc;
            v ^= v >> 16;
            state[i] = v;
        }
        return state;
    }

    private void Step() => _state = _state * Multiplier + _inc;

    /// <summary>Next raw 64-bit draw (numpy <c>PCG64.random_raw()</c>).</summary>
    public ulong NextUInt64()
    {
        Step();
        ulong hi = (ulong)(_state >> 64), lo = (ulong)_state;
        return BitOperations.RotateRight(hi ^ lo, (int)(hi >> 58));
    }

    /// <summary>Next 32-bit draw: the low then the high half of one 64-bit draw (numpy's buffered next32).</summary>
    public uint NextUInt32()
    {
        if (_hasUint32)
        {
            _hasUint32 = false;
            return _uinteger;
        }
        ulong next = NextUInt64();
        _hasUint32 = true;
        _uinteger = (uint)(next >> 32);
        return (uint)next;
    }

    /// <summary>A double in [0, 1) (numpy <c>Generator.random()</c>).</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / 9007199254740992.0);

    /// <summary>numpy's <c>random_interval(max)</c>: uniform in [0, max] by masked rejection.</summary>
    public ulong Interval(ulong max)
    {
        if (max == 0) return 0;
        ulong mask = max;
        mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4; mask |= mask >> 8; mask |= mask >> 16; mask |= mask >> 32;
        ulong value;
        if (max <= 0xffffffffUL)
        {
            while ((value = NextUInt32() & mask) > max) { }
        }
        else
        {
            while ((value = NextUInt64() & mask) > max) { }
        }
        return value;
    }

    /// <summary>numpy's <c>random_bounded_uint64(off=0, rng, use_masked=False)</c>: uniform in [0, rng] with Lemire's method.</summary>
    public ulong Bounded(ulong rng)
    {
        if (rng == 0) return 0;
        if (rng <= 0xffffffffUL)
        {
            if (rng == 0xffffffffUL) return NextUInt32();
            uint rngExcl = (uint)rng + 1;
            ulong m = (ulong)NextUInt32() * rngExcl;
            uint leftover = (uint)m;
            if (leftover < rngExcl)
            {
                uint threshold = (uint.MaxValue - (uint)rng) % rngExcl;
                while (leftover < threshold)
                {
                    m = (ulong)NextUInt32() * rngExcl;
                    leftover = (uint)m;
                }
            }
            return m >> 32;
        }
        if (rng == ulong.MaxValue) return NextUInt64();
        ulong excl = rng + 1;
        UInt128 mm = (UInt128)NextUInt64() * excl;
        ulong left = (ulong)mm;
        if (left < excl)
        {
            ulong threshold = (ulong.MaxValue - rng) % excl;
            while (left < threshold)
            {
                mm = (UInt128)NextUInt64() * excl;
                left = (ulong)mm;
            }
        }
        return (ulong)(mm >> 64);
    }

    /// <summary>Shuffles in place exactly as numpy's <c>Generator.shuffle</c> on a 1-D array.</summary>
    public void Shuffle<T>(T[] x)
    {
        for (long i = x.Length - 1; i >= 1; i--)
        {
            long j = (long)Interval((ulong)i);
            (x[i], x[j]) = (x[j], x[i]);
        }
    }

    /// <summary><c>Generator.permutation(n)</c>: a shuffled <c>arange(n)</c>.</summary>
    public int[] Permutation(int n)
    {
        var a = new int[n];
        for (int i = 0; i < n; i++) a[i] = i;
        Shuffle(a);
        return a;
    }

    /// <summary><c>Generator.permutation(array)</c>: a shuffled copy.</summary>
    public T[] Permutation<T>(IReadOnlyList<T> items)
    {
        var a = items.ToArray();
        Shuffle(a);
        return a;
    }

    private void ShuffleInt(long[] data, int n, int first)
    {
        for (long i = n - 1; i >= first; i--)
        {
            long j = (long)Bounded((ulong)i);
            (data[i], data[j]) = (data[j], data[i]);
        }
    }

    /// <summary><c>Generator.choice(popSize, size, replace=False, shuffle=True)</c>: indices in [0, popSize).</summary>
    public long[] ChoiceWithoutReplacement(int popSize, int size)
    {
        if (size > popSize) throw new ArgumentException("Cannot take a larger sample than population when replace is False");
        if (size < 0) throw new ArgumentOutOfRangeException(nameof(size));
        if (popSize > 10000 && size > popSize / 50)
        {
            var idx = new long[popSize];
            for (int i = 0; i < popSize; i++) idx[i] = i;
            ShuffleInt(idx, popSize, Math.Max(popSize - size, 1));
            return idx.AsSpan(popSize - size).ToArray();
        }
        var result = new long[size];
        var seen = new HashSet<ulong>();
        for (long j = popSize - size; j < popSize; j++)
        {
            ulong val = Bounded((ulong)j);
            if (seen.Add(val)) result[j - popSize + size] = (long)val;
            else
            {
                seen.Add((ulong)j);
                result[j - popSize + size] = j;
            }
        }
        ShuffleInt(result, size, 1);
        return result;
    }
}
