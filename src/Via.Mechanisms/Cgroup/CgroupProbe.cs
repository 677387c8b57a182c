using Via.Kernel;
using Via.Kernel.Bpf;
using Via.Kernel.Cgroups;

namespace Via.Mechanisms.Cgroup;

/// <summary>Checks, for <c>via doctor</c>, that this kernel takes the cgroup mechanism's programs.</summary>
public static class CgroupProbe
{
    /// <summary>Loads the mark, setsockopt-guard and egress-guard programs and, given a cgroup2 root, attaches and detaches them on a scratch cgroup. Null when all works, else why not.</summary>
    public static string? Check(string? cgroup2Root)
    {
        try
        {
            using var mark = BpfSyscall.LoadProgram(BpfProgType.CgroupSock, BpfAttachType.CgroupInetSockCreate, SocketMarkProgram.SetMark(0x10000), SocketMarkProgram.Name);
            using var guard = BpfSyscall.LoadProgram(BpfProgType.CgroupSockopt, BpfAttachType.CgroupSetsockopt, SocketMarkProgram.GuardSetsockopt(Guard.EgressGuardPrograms.LoopbackIndex), SocketMarkProgram.GuardName);
            // The egress guard's programs, through the verifier of this kernel (cgroup_skb, sock_addr, a per-CPU map).
            using (var counters = BpfSyscall.CreateMap(BpfMapType.PerCpuArray, Guard.EgressGuardPrograms.CountersSize, 1, Guard.EgressGuardPrograms.CountersName))
            {
                BpfSyscall.LoadProgram(BpfProgType.CgroupSkb, BpfAttachType.CgroupInetEgress, Guard.EgressGuardPrograms.Egress(counters.Value, Guard.EgressGuardPrograms.LoopbackIndex), Guard.EgressGuardPrograms.EgressName).Dispose();
                BpfSyscall.LoadProgram(BpfProgType.CgroupSkb, BpfAttachType.CgroupInetIngress, Guard.EgressGuardPrograms.Ingress(counters.Value), Guard.EgressGuardPrograms.IngressName).Dispose();
                BpfSyscall.LoadProgram(BpfProgType.CgroupSockAddr, BpfAttachType.CgroupInet6Connect, Guard.EgressGuardPrograms.Connect6(Guard.EgressGuardPrograms.LoopbackIndex), Guard.EgressGuardPrograms.Connect6Name).Dispose();
            }
            if (cgroup2Root is null) return null;
            string parent = Path.Combine(cgroup2Root, RouteCgroups.Subtree);
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
