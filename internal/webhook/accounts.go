package webhook

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Accounts looks ServiceAccounts up in an informer's cache and, for one the cache has not seen
// (created a moment before its pod: the race IRSA's webhook users hit), asks the API server
// before deciding. It needs get, list and watch on serviceaccounts, nothing more.
type Accounts struct {
	client  kubernetes.Interface
	factory informers.SharedInformerFactory
	lister  listersv1.ServiceAccountLister
	synced  cache.InformerSynced
}

var _ ServiceAccounts = (*Accounts)(nil)

// NewAccounts builds the cache; Run fills it.
func NewAccounts(client kubernetes.Interface, resync time.Duration) *Accounts {
	f := informers.NewSharedInformerFactory(client, resync)
	inf := f.Core().V1().ServiceAccounts()
	return &Accounts{client: client, factory: f, lister: inf.Lister(), synced: inf.Informer().HasSynced}
}

// Run starts the informer and returns once its first list is in the cache (or ctx ends); the
// informer keeps watching until ctx is done.
func (a *Accounts) Run(ctx context.Context) error {
	a.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), a.synced) {
		return fmt.Errorf("serviceaccount cache: not synced: %w", ctx.Err())
	}
	return nil
}

// Synced reports whether the first list has reached the cache (the webhook's /readyz).
func (a *Accounts) Synced() bool { return a.synced() }

// Shutdown waits for the informer's goroutines after Run's ctx is done.
func (a *Accounts) Shutdown() { a.factory.Shutdown() }

// ServiceAccount returns namespace/name from the cache, else from the API server; ErrNotFound
// when the API server does not have it either.
func (a *Accounts) ServiceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error) {
	sa, err := a.lister.ServiceAccounts(namespace).Get(name)
	if err == nil {
		return sa, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("serviceaccount cache: %w", err)
	}
	sa, err = a.client.CoreV1().ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, ErrNotFound
	case err != nil:
		return nil, fmt.Errorf("get serviceaccount %s/%s: %w", namespace, name, err)
	}
	return sa, nil
}
