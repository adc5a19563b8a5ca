/**
 * The fake Kubernetes API server (a test double: see fake-apiserver.ts for what it leaves out)
 * and its throwaway PKI. Imported only by tests and benchmarks.
 */
export {
  type FakeKubeApiServer,
  type FakeKubeOptions,
  type KubeRule,
  type RecordedExec,
  type RecordedKubeRequest,
  startFakeKubeApiServer,
  startFakeKubeWithWebPod,
} from './fake-apiserver';
export { type KubectlResult, kubectl, type RunningKubectl, requireKubectl, spawnKubectl } from './kubectl';
export { type CertFiles, TestPki } from './pki';
