// First touch of fresh anonymous memory on 4 KiB pages and on transparent huge pages, with and without
// MADV_POPULATE_WRITE: the measurement behind the page policy in docs/RUNTIME.md ("Time to first inference").
//
//   cc -O2 Benchmarks/first_touch.c -o first_touch
//   for mode in 0 1 2 3; do sleep 5; ./first_touch $mode 48; done   # after idle seconds
//   for mode in 0 1 2 3; do ./first_touch $mode 48; done            # back to back
//
// mode: bit 0 = MADV_HUGEPAGE, bit 1 = MADV_POPULATE_WRITE; the second argument is the size in MiB.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e3+t.tv_nsec*1e-6;}
int main(int argc,char**argv){
  size_t n=(size_t)atoi(argv[2])<<20; int mode=atoi(argv[1]);
  double t0=now();
  size_t al=2<<20; char*raw=mmap(0,n+al,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
  char*p=(char*)(((size_t)raw+al-1)&~(al-1));
  if(mode&1) madvise(p,n,MADV_HUGEPAGE);
  if(mode&2) madvise(p,n,MADV_POPULATE_WRITE);
  double t1=now();
  for(size_t i=0;i<n;i+=4096)p[i]=1;
  double t2=now();
  memset(p,3,n);
  double t3=now();
  printf("mode %d hp=%d pop=%d: setup %.1f touch %.1f memset %.1f ms -> %.2f GB/s\n",mode,mode&1,(mode&2)/2,t1-t0,t2-t1,t3-t2,n/1e6/(t2-t0));
}
