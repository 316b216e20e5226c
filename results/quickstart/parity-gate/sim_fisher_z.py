import numpy as np, math
from scipy.stats import spearmanr
from statistics import NormalDist
rng=np.random.default_rng(1); zc=NormalDist().inv_cdf(0.95)
def lcb(r,n): return math.tanh(math.atanh(min(r,1-12/(n**3-n)))-zc*math.sqrt(1.06/(n-3)))
N=100000
for kind in ['gauss','heavy','skew']:
  for sig in [0.1,0.15,0.2]:
    x=rng.standard_normal(N)
    e={'gauss':rng.standard_normal(N),'heavy':rng.standard_t(3,N)/np.sqrt(3),'skew':(rng.exponential(1,N)-1)*np.abs(x)}[kind]
    y=x+sig*e; rho=spearmanr(x,y)[0]
    for n in [64,324]:
      R=400; c=0; pas=0
      for t in range(R):
        i=rng.choice(N,n,replace=False); r=spearmanr(x[i],y[i])[0]; b=lcb(r,n); c+= b<=rho
      print(f"{kind} rho={rho:.4f} n={n} coverage={c/R:.3f}",flush=True)
