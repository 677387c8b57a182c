using Via.Kernel;
using Via.Kernel.Bpf;
using Via.Kernel.Cgroups;

namespace Via.Mechanisms.Cgroup;

/// <summary>Checks, for <c>via doctor</c>, that this kernel takes the cgroup mechanism's programs.</summary>
public static class CgroupProbe
{
    /// <summary>Loads both programs and, given a cgroup2 root, attaches and detaches them on a scratch cgroup. Null when all works, else why not.</summary>
    public static string? Check(string? cgroup2Root)
    {
        try
        {
            using var mark = BpfSyscall.LoadProgram(BpfProgType.CgroupSock, BpfAttachType.CgroupInetSockCreate, SocketMarkProgram.SetMark(0x10000), SocketMarkProgram.Name);
            using var guard = BpfSyscall.LoadProgram(BpfProgType.CgroupSockopt, BpfAttachType.CgroupSetsockopt, SocketMarkProgram.GuardSetsockopt(Guard.EgressGuardPrograms.LoopbackIndex), SocketMarkProgram.GuardName);
            if (cgroup2Root is null) return null;
            string parent = Path.Combine(cgroup2Root, CgroupBpfMechanism.Subtree);
            string scratch = Path.Combine(parent, $"doctor-{Environment.ProcessId}");
            bool madeParent = Cgroup2.Create(parent);
            Cgroup2.Create(scratch);
            try
            {
                using var dir = Cgroup2.OpenDirectory(scratch);
                BpfSyscall.Attach(dir, mark, BpfAttachType.CgroupInetSockCreate, BpfSyscall.AllowMulti, scratch);
                BpfSyscall.Detach(dir, mark, BpfAttachType.CgroupInetSockCreate, scratch);
                BpfSyscall.Attach(dir, guard, BpfAttachType.CgroupSetsockopt, BpfSyscall.AllowMulti, scratch);
                BpfSyscall.Detach(dir, guard, BpfAttachType.CgroupSetsockopt, scratch);
            }
            finally
            {
                Cgroup2.Remove(scratch);
                if (madeParent) { try { Cgroup2.Remove(parent); } catch (KernelException) { } }
            }
            return null;
        }
        catch (KernelException e)
        {
            return e.Message;
        }
    }
}
