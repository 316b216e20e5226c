import numpy as np, math
from scipy.stats import spearmanr, rankdata
rng=np.random.default_rng(2)
def sp_rows(X,Y):
    rx=rankdata(X,axis=1); ry=rankdata(Y,axis=1)
    rx-=rx.mean(1,keepdims=True); ry-=ry.mean(1,keepdims=True)
    return (rx*ry).sum(1)/np.sqrt((rx*rx).sum(1)*(ry*ry).sum(1))
def boot_lcb(x,y,B=500,conf=0.95):
    n=len(x); idx=rng.integers(0,n,(B,n))
    return np.quantile(sp_rows(x[idx],y[idx]),1-conf)
N=100000
for kind in ['gauss','heavy','skew']:
  for sig in [0.1,0.2]:
    x=rng.standard_normal(N)
    e={'gauss':rng.standard_normal(N),'heavy':rng.standard_t(3,N)/np.sqrt(3),'skew':(rng.exponential(1,N)-1)*np.abs(x)}[kind]
    y=x+sig*e; rho=spearmanr(x,y)[0]
    for n in [64,324]:
      R=200; c=0
      for t in range(R):
        i=rng.choice(N,n,replace=False); c+= boot_lcb(x[i],y[i])<=rho
      print(f"{kind} rho={rho:.4f} n={n} boot coverage={c/R:.3f}",flush=True)
